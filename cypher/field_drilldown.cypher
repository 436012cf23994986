// Drill-down by field: the rules filtering on a field (its canonical name, or the name as a
// rule writes it), how they use it, and the techniques they detect.
// Parameters: field, include_deprecated.
// Columns: uid, title, vendor, status, deprecated, raw_fields, ops, exclusions, techniques.
// :params {field: 'CommandLine', include_deprecated: false}
MATCH (r:Rule)-[e:FILTERS]->(f:Field)
WHERE (f.name = $field OR e.raw_field = $field) AND ($include_deprecated OR r.deprecated = false)
WITH r, collect(DISTINCT e.raw_field) AS raw_fields, collect(DISTINCT e.op) AS ops,
     sum(CASE WHEN e.exclusion THEN 1 ELSE 0 END) AS exclusions
OPTIONAL MATCH (r)-[:DETECTS]->(t:Technique)
RETURN r.uid AS uid, r.title AS title, r.vendor AS vendor, r.status AS status,
       r.deprecated AS deprecated, raw_fields, ops, exclusions,
       collect(DISTINCT t.id) AS techniques
ORDER BY vendor, uid
