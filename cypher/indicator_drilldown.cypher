// Drill-down by indicator: the rules comparing a field with a value, and the techniques they
// detect. Field and value as the indicator lists show them (the folded form: canonical field,
// lower-cased text) or as a rule writes them; op '' means any operator.
// Parameters: field, op, value, include_deprecated.
// Columns: uid, title, vendor, status, deprecated, ops, negated (the rule uses it only
//   negated), exclusion (in an exclusion, too), raw_fields, raw_values, reach, techniques.
// :params {field: 'CommandLine', op: 'contains', value: '-enc', include_deprecated: false}
MATCH (r:Rule)-[u:USES]->(v:Value)
WHERE (v.field = $field OR u.raw_field = $field) AND ($op = '' OR u.op = $op)
  AND (v.value = $value OR u.raw_value = $value)
  AND ($include_deprecated OR r.deprecated = false)
WITH r, collect(DISTINCT u.op) AS ops, count(u) AS rows,
     sum(CASE WHEN u.negated THEN 1 ELSE 0 END) AS negated_rows,
     sum(CASE WHEN u.exclusion THEN 1 ELSE 0 END) AS exclusion_rows,
     collect(DISTINCT u.raw_field) AS raw_fields, collect(DISTINCT u.raw_value) AS raw_values,
     max(u.reach) AS reach
OPTIONAL MATCH (r)-[:DETECTS]->(t:Technique)
RETURN r.uid AS uid, r.title AS title, r.vendor AS vendor, r.status AS status,
       r.deprecated AS deprecated, ops, negated_rows = rows AS negated,
       exclusion_rows > 0 AS exclusion, raw_fields, raw_values, reach,
       collect(DISTINCT t.id) AS techniques
ORDER BY vendor, uid
