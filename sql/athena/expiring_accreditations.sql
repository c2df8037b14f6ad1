-- expiring_accreditations (Trino SQL): one row per accreditation of a current facility with
-- as_of <= valid_until <= as_of + 6 calendar months; date_add clamps the end to the last day of
-- its month (2026-08-31 + 6 months = 2027-02-28), as the local engine does.
-- days_left = valid_until - as_of in days.
-- Ordered by valid_until, facility_id, accreditation_body (NULL last).
-- Current record and object scope as in facility_metrics.sql.
-- Placeholders, substituted by server/athena_sql.c with checked values only:
--   {{relation}} "database"."table" ([a-z0-9_]{1,128} each)
--   {{as_of}}   DATE 'YYYY-MM-DD'
--   {{source}}  's3://bucket/key' with quotes doubled, or NULL (dataset scope)
WITH ranked AS (
    SELECT t.facility_id, t.facility_name, t.location, t.accreditations, "$path" AS src_path,
           row_number() OVER (PARTITION BY t.facility_id
                              ORDER BY "$file_modified_time" DESC, "$path" DESC) AS rn
    FROM {{relation}} AS t
    WHERE t.facility_id IS NOT NULL AND t.facility_id <> ''
),
cur AS (
    SELECT * FROM ranked
    WHERE rn = 1 AND (CAST({{source}} AS varchar) IS NULL OR src_path = {{source}})
),
acc AS (
    SELECT c.facility_id AS facility_id,
           c.facility_name AS facility_name,
           c.location.state AS state,
           a.acc_body AS accreditation_body,
           CAST(a.acc_until AS date) AS valid_until
    FROM cur AS c
    CROSS JOIN UNNEST(c.accreditations) AS a (acc_body, acc_id, acc_until)
)
SELECT x.facility_id AS facility_id,
       x.facility_name AS facility_name,
       x.state AS state,
       x.accreditation_body AS accreditation_body,
       x.valid_until AS valid_until,
       date_diff('day', {{as_of}}, x.valid_until) AS days_left
FROM acc AS x
WHERE x.valid_until BETWEEN {{as_of}} AND date_add('month', 6, {{as_of}})
ORDER BY x.valid_until ASC, x.facility_id ASC, x.accreditation_body ASC NULLS LAST
