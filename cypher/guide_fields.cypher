// Authoring guide, fields filtered most: for each field the technique's rules filter on, the
// rules using it, then one row per operator with its rules and the values compared with.
// Parameters: technique, include_subtechniques, include_deprecated, platform, domain, vendor
//   ('' means any), limit (fields).
// Columns: field, rules, op, op_rules, sample_values.
// :params {technique: 'T1505', include_subtechniques: true, include_deprecated: false, platform: '', domain: '', vendor: '', limit: 15}
MATCH (t:Technique)
WHERE t.id = $technique OR ($include_subtechniques AND t.parent = $technique)
MATCH (r:Rule)-[:DETECTS]->(t)
WITH r, r.deprecated AS deprecated, r.platforms AS platforms, r.domain AS domain,
     r.vendor AS vendor
WHERE ($include_deprecated OR deprecated = false)
  AND ($platform = '' OR $platform IN platforms)
  AND ($domain = '' OR domain = $domain) AND ($vendor = '' OR vendor = $vendor)
WITH DISTINCT r
MATCH (r)-[u:USES]->(v:Value)
WITH r.uid AS rule, v.field AS field, u.op AS op, v.value AS value
WHERE field <> ''
WITH field, count(DISTINCT rule) AS rules, collect({rule: rule, op: op, value: value}) AS uses
ORDER BY rules DESC, field
LIMIT $limit
UNWIND uses AS use
WITH field, rules, use.op AS op, count(DISTINCT use.rule) AS op_rules,
     collect(DISTINCT use.value) AS sample_values
RETURN field, rules, op, op_rules, sample_values
ORDER BY rules DESC, field, op_rules DESC, op
