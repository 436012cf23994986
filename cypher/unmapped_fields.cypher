// Unmapped fields: fields rules filter on that the alias table has no canonical name for, per
// vendor, with the rules using each (computed columns count here too: they never map).
// Parameters: vendor ('' means any), limit (rows).
// Columns: vendor, field, rules.
// :params {vendor: '', limit: 25}
MATCH (r:Rule)-[f:FILTERS]->(x:Field)
WHERE x.mapped = false AND ($vendor = '' OR r.vendor = $vendor)
WITH r.vendor AS vendor, f.raw_field AS field, count(DISTINCT r) AS rules
RETURN vendor, field, rules
ORDER BY rules DESC, vendor, field
LIMIT $limit
