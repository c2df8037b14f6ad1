-- accredited_by_state (Trino SQL): per location.state (NULL is its own group), over current
-- facilities with at least one accreditation valid on as_of (valid_until >= as_of): the number
-- of such facilities (each counted once, however many accreditations it has), their employees
-- counted once each (NULL as 0), and the number of such accreditations.
-- Ordered by facility_count descending, then state with NULL last.
-- Current record and object scope as in facility_metrics.sql.
-- Placeholders, substituted by server/athena_sql.c with checked values only:
--   {{relation}} "database"."table" ([a-z0-9_]{1,128} each)
--   {{as_of}}   DATE 'YYYY-MM-DD'
--   {{source}}  's3://bucket/key' with quotes doubled, or NULL (dataset scope)
WITH ranked AS (
    SELECT t.facility_id, t.location, t.employee_count, t.accreditations, "$path" AS src_path,
           row_number() OVER (PARTITION BY t.facility_id
                              ORDER BY "$file_modified_time" DESC, "$path" DESC) AS rn
    FROM {{relation}} AS t
    WHERE t.facility_id IS NOT NULL AND t.facility_id <> ''
),
cur AS (
    SELECT * FROM ranked
    WHERE rn = 1 AND (CAST({{source}} AS varchar) IS NULL OR src_path = {{source}})
),
valid AS (
    SELECT c.location.state AS state,
           c.employee_count AS employee_count,
           cardinality(filter(c.accreditations,
                              a -> CAST(a.valid_until AS date) >= {{as_of}})) AS n
    FROM cur AS c
)
SELECT v.state AS state,
       count(*) AS facility_count,
       CAST(sum(coalesce(v.employee_count, 0)) AS bigint) AS total_employees,
       CAST(sum(v.n) AS bigint) AS valid_accreditations
FROM valid AS v
WHERE v.n > 0
GROUP BY v.state
ORDER BY facility_count DESC, state ASC NULLS LAST
