-- Of the cells to publish: those shown with fewer than $min_cell_size subscribers (must be 0),
-- those suppressed, and all of them.
SELECT count(*) FILTER (WHERE NOT suppressed AND distinct_subscribers < $min_cell_size)
           AS small_published,
       count(*) FILTER (WHERE suppressed) AS suppressed_cells,
       count(*) AS cells
FROM staged_published
