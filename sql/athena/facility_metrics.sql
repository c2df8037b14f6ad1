-- facility_metrics (Trino SQL): one row per current facility, ordered by facility_id (code point
-- order, which is UTF-8 byte order, as on the local engine).
-- Current record: for each facility_id the record of the most recently modified object
-- ("$file_modified_time", then "$path" to break ties), as the local engine keeps the most
-- recently loaded object's record. Object scope keeps the facilities whose current record came
-- from the job's source object ("$path" = {{source}}).
-- employee_count is NULL when missing; number_of_offered_services counts services (0 when
-- missing, null or empty); the expiry date is the first accreditation's valid_until (NULL when
-- there is none).
-- Placeholders, substituted by server/athena_sql.c with checked values only:
--   {{relation}} "database"."table" ([a-z0-9_]{1,128} each)
--   {{as_of}}   DATE 'YYYY-MM-DD' (unused here)
--   {{source}}  's3://bucket/key' with quotes doubled, or NULL (dataset scope)
WITH ranked AS (
    SELECT t.facility_id, t.facility_name, t.location, t.employee_count, t.services,
           t.accreditations, "$path" AS src_path,
           row_number() OVER (PARTITION BY t.facility_id
                              ORDER BY "$file_modified_time" DESC, "$path" DESC) AS rn
    FROM {{relation}} AS t
    WHERE t.facility_id IS NOT NULL AND t.facility_id <> ''
),
cur AS (
    SELECT * FROM ranked
    WHERE rn = 1 AND (CAST({{source}} AS varchar) IS NULL OR src_path = {{source}})
)
SELECT c.facility_id AS facility_id,
       c.facility_name AS facility_name,
       c.employee_count AS employee_count,
       CAST(coalesce(cardinality(c.services), 0) AS bigint) AS number_of_offered_services,
       CAST(element_at(c.accreditations, 1).valid_until AS date)
           AS expiry_date_of_first_accreditation
FROM cur AS c
ORDER BY c.facility_id
