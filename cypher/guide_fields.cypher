// Authoring guide, fields filtered most: for each field the technique's rules filter on, the
// rules using it, then one row per operator with its rules and the values compared with.
// Parameters: technique, include_subtechniques, include_deprecated, platform, domain, vendor
//   ('' means any), limit (fields).
// Columns: field, rules, op, op_rules, sample_values.
// :params {technique: 'T1505', include_subtechniques: true, include_deprecated: false, platform: '', domain: '', vendor: '', limit: 15}
MATCH (t:Technique)
WHERE t.id = $technique OR ($include_subtechniques AND t.parent = $technique)
MATCH (r:Rule)-[:DETECTS]->(t)
WHERE ($include_deprecated OR r.deprecated = false)
  AND ($platform = '' OR $platform IN r.platforms)
  AND ($domain = '' OR r.domain = $domain) AND ($vendor = '' OR r.vendor = $vendor)
WITH DISTINCT r
MATCH (r)-[:FILTERS]->(f:Field)
WITH f, count(DISTINCT r) AS rules, collect(DISTINCT r) AS field_rules
ORDER BY rules DESC, f.name
LIMIT $limit
UNWIND field_rules AS fr
MATCH (fr)-[u:USES]->(v:Value)
WITH f, rules, fr, u.op AS op, v.field AS value_field, v.value AS value
WHERE value_field = f.name
WITH f.name AS field, rules, op, count(DISTINCT fr) AS op_rules,
     collect(DISTINCT value) AS sample_values
RETURN field, rules, op, op_rules, sample_values
ORDER BY rules DESC, field, op_rules DESC, op
