"""The pipeline by stage: each folder holds its asset(s), their keys and check specs, audit SQL
and SQL statements (`sql/`). `shared/` holds what every stage uses: the connection and metadata
helpers, write-audit-publish and the landing-registry refresh."""
