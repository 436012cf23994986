// Authoring guide, exclusions: the false-positive filters (rows of a top-level NOT) the
// technique's rules carry, with how many rules exclude each. The op is what an event must match
// to be excluded: a row negated again under the NOT reads `not <op>` (`is_null` for is_not_null).
// Parameters: technique, include_subtechniques, include_deprecated, platform, domain, vendor
//   ('' means any), limit.
// Columns: field, op, value, rules.
// :params {technique: 'T1505', include_subtechniques: true, include_deprecated: false, platform: '', domain: '', vendor: '', limit: 25}
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
WITH r, v, u.op AS op, u.negated AS negated, u.exclusion AS exclusion
WHERE exclusion = true
WITH r, v, CASE WHEN negated THEN op WHEN op = 'is_not_null' THEN 'is_null'
                ELSE 'not ' + op END AS op
WITH v, op, count(DISTINCT r) AS rules
RETURN v.field AS field, op, v.value AS value, rules
ORDER BY rules DESC, field, op, value
LIMIT $limit
