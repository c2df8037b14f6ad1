-- create_table (Hive DDL, run by the athena engine once per configuration, and again when Athena
-- reports the table missing): the facility records of DESIGN.md, one JSON object per line, read
-- by the openx JSON SerDe with ignore.malformed.json off, so a malformed line fails the query
-- instead of silently becoming a row of NULLs. valid_until stays a string here; the queries cast
-- it to DATE, so an impossible date is an error as well.
-- Placeholders, substituted by server/athena_sql.c with checked values only:
--   {{database}}, {{table}}  backquoted identifiers ([a-z0-9_]{1,128})
--   {{location}}             the source prefix as a string literal 's3://bucket/prefix/'
--                            (bucket and prefix characters from a safe set; no quote, no backslash)
CREATE EXTERNAL TABLE IF NOT EXISTS {{database}}.{{table}} (
    `facility_id` string,
    `facility_name` string,
    `location` struct<address:string, city:string, state:string, zip:string>,
    `employee_count` bigint,
    `services` array<string>,
    `labs` array<struct<lab_name:string, certifications:array<string>>>,
    `accreditations` array<struct<accreditation_body:string, accreditation_id:string,
                                  valid_until:string>>
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'false')
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION {{location}}
TBLPROPERTIES ('classification' = 'json')
