-- facility_metrics: one row per current facility, ordered by facility_id (byte order).
-- Parameters: :as_of (YYYY-MM-DD, unused here), :load (NULL = dataset scope, else the load_id
-- of the job's source object: only facilities whose current record came from it).
-- Dates are integer days since 1970-01-01; the engine renders them as YYYY-MM-DD.
SELECT c.facility_id AS facility_id,
       f.name AS facility_name,
       f.employee_count AS employee_count,
       f.n_services AS number_of_offered_services,
       f.first_valid_until AS expiry_date_of_first_accreditation
FROM current AS c
JOIN facilities AS f ON f.id = c.fac
WHERE :load IS NULL OR c.load_id = :load
ORDER BY c.facility_id;
