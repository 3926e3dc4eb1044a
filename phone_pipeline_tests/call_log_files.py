"""Call-log files written exactly as other systems write them, for the profile tests.

- Asterisk cdr_csv (cdr_csv.c, `build_csv_record`): no header; strings quoted with `"` doubled
  inside, duration and billsec bare integers, an unset time (the answer of an unanswered call) an
  empty unquoted field, times `%Y-%m-%d %T` in the PBX's local zone; uniqueid last with
  loguniqueid=yes.
- FreeSWITCH mod_cdr_csv, template `example` of conf/vanilla/autoload_configs/cdr_csv.conf.xml:
  no header, every field quoted (caller_id_name, caller_id_number, destination_number, context,
  start_stamp, answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid, bleg_uuid,
  accountcode, read_codec, write_codec).
- Twilio's call-log CSV: a header of the Call resource's properties, times in UTC (RFC 2822),
  Duration empty for calls that were not answered.

Only fictional numbers: NANP 212-555-01xx and the UK drama block +44 20 7946 0xxx. The Berlin days
are those of the 2026 daylight-saving changes: 2026-03-29 (02:00 -> 03:00) and 2026-10-25
(03:00 -> 02:00).
"""

from __future__ import annotations

# loguniqueid=yes: 17 fields. Row 2 starts in the spring-forward gap, row 5 at an extension.
ASTERISK_SPRING = (
    '"","+442079460101","2125550102","from-trunk","""Caller"" <+442079460101>",'
    '"PJSIP/trunk-00000001","PJSIP/1001-00000002","Dial","PJSIP/1001,30,tT",'
    '"2026-03-29 01:59:30","2026-03-29 01:59:35","2026-03-29 03:01:35",125,120,"ANSWERED",'
    '"DOCUMENTATION","1774745970.1"\n'
    '"","+442079460103","2125550104","from-trunk","""Caller"" <+442079460103>",'
    '"PJSIP/trunk-00000003","PJSIP/1002-00000004","Dial","PJSIP/1002,30,tT",'
    '"2026-03-29 02:30:00",,"2026-03-29 02:30:20",20,0,"NO ANSWER","DOCUMENTATION",'
    '"1774747800.3"\n'
    '"","+442079460105","2125550106","from-trunk","""Caller"" <+442079460105>",'
    '"PJSIP/trunk-00000005","PJSIP/1003-00000006","Dial","PJSIP/1003,30,tT",'
    '"2026-03-29 10:00:00",,"2026-03-29 10:00:03",3,0,"BUSY","DOCUMENTATION","1774771200.5"\n'
    '"","+442079460107","2125550108","from-trunk","""Caller"" <+442079460107>",'
    '"PJSIP/trunk-00000007","","Congestion","",'
    '"2026-03-29 11:00:00",,"2026-03-29 11:00:01",1,0,"CONGESTION","DOCUMENTATION",'
    '"1774774800.7"\n'
    '"","1001","1002","from-internal","""Alice"" <1001>","PJSIP/1001-00000009",'
    '"PJSIP/1002-0000000a","Dial","PJSIP/1002,30","2026-03-29 12:00:00",'
    '"2026-03-29 12:00:02","2026-03-29 12:05:02",302,300,"ANSWERED","DOCUMENTATION",'
    '"1774778400.9"\n'
    '"","1001","+12125550109","from-internal","""Alice"" <1001>","PJSIP/1001-0000000b",'
    '"PJSIP/trunk-0000000c","Dial","PJSIP/trunk/+12125550109,60","2026-03-29 13:00:00",'
    '"2026-03-29 13:00:05","2026-03-29 13:01:05",65,60,"ANSWERED","DOCUMENTATION",'
    '"1774782000.11"\n'
)

# loguniqueid off (the default): 16 fields, no call id: the hash rule. Row 1 at 02:30 on the
# fall-back day occurs twice.
ASTERISK_AUTUMN = (
    '"","+442079460111","2125550112","from-trunk","""Caller"" <+442079460111>",'
    '"PJSIP/trunk-00000011","PJSIP/1001-00000012","Dial","PJSIP/1001,30,tT",'
    '"2026-10-25 02:30:00","2026-10-25 02:30:04","2026-10-25 02:31:04",64,60,"ANSWERED",'
    '"DOCUMENTATION"\n'
    '"","+442079460113","2125550114","from-trunk","""Caller"" <+442079460113>",'
    '"PJSIP/trunk-00000013","PJSIP/1001-00000014","Dial","PJSIP/1001,30,tT",'
    '"2026-10-25 03:30:00","2026-10-25 03:30:04","2026-10-25 03:31:04",64,60,"ANSWERED",'
    '"DOCUMENTATION"\n'
)

FREESWITCH = (
    '"Bob","+442079460121","2125550122","default","2026-10-25 02:15:00","2026-10-25 02:15:04",'
    '"2026-10-25 02:16:04","64","60","NORMAL_CLEARING","2f3c1a6e-5b1d-4c8e-9f0a-1b2c3d4e5f60",'
    '"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","","PCMU","PCMU"\n'
    '"Carol","+442079460123","2125550124","default","2026-10-25 09:00:00","",'
    '"2026-10-25 09:00:30","30","0","NO_ANSWER","3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d","","",'
    '"PCMU","PCMU"\n'
    '"ext","1005","+12125550125","default","2026-10-25 10:00:00","2026-10-25 10:00:03",'
    '"2026-10-25 10:02:03","123","120","NORMAL_CLEARING","4b5c6d7e-8f9a-4b1c-8d2e-3f4a5b6c7d8e",'
    '"","","PCMU","PCMU"\n'
    '"Dan","+442079460126","2125550127","default","2026-10-25 11:00:00","",'
    '"2026-10-25 11:00:10","10","0","INCOMPATIBLE_DESTINATION",'
    '"5c6d7e8f-9a0b-4c2d-9e3f-4a5b6c7d8e9f","","","PCMU","PCMU"\n'
)

TWILIO_HEADER = (
    "Sid,DateCreated,DateUpdated,ParentCallSid,AccountSid,To,ToFormatted,From,FromFormatted,"
    "PhoneNumberSid,Status,StartTime,EndTime,Duration,Price,PriceUnit,Direction,AnsweredBy,"
    "Annotation,ApiVersion,ForwardedFrom,GroupSid,CallerName,Uri\n"
)
_ACCOUNT = "AC" + "0" * 32
TWILIO = TWILIO_HEADER + (
    f'CA{"1" * 32},"Sun, 25 Oct 2026 09:00:00 +0000","Sun, 25 Oct 2026 09:01:05 +0000",,'
    f"{_ACCOUNT},+12125550131,(212) 555-0131,+442079460132,+44 20 7946 0132,PN{'2' * 32},"
    'completed,"Sun, 25 Oct 2026 09:00:00 +0000","Sun, 25 Oct 2026 09:01:05 +0000",65,-0.0130,'
    f"USD,outbound-api,,,2010-04-01,,,,/2010-04-01/Accounts/{_ACCOUNT}/Calls/CA{'1' * 32}.json\n"
    f'CA{"3" * 32},"Sun, 25 Oct 2026 10:00:00 +0000","Sun, 25 Oct 2026 10:00:30 +0000",,'
    f"{_ACCOUNT},+12125550133,(212) 555-0133,+442079460134,+44 20 7946 0134,PN{'2' * 32},"
    'no-answer,"Sun, 25 Oct 2026 10:00:00 +0000",,,,USD,outbound-api,,,2010-04-01,,,,'
    f"/2010-04-01/Accounts/{_ACCOUNT}/Calls/CA{'3' * 32}.json\n"
)
# The same export without its StartTime column (a profile error: the file and column named).
TWILIO_WITHOUT_START = (
    "\n".join(
        ",".join(field for index, field in enumerate(line.split(",")) if index != 11)
        for line in TWILIO_HEADER.strip().splitlines()
    )
    + "\n"
)
