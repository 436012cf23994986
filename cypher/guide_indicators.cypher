// Authoring guide, top indicators: (field, op, value) the technique's rules match on, with
// the rules using each under the technique and its corpus reach (distinct non-deprecated rules
// across the whole catalogue using the same field, op and value; the build counts it once and
// keeps it on each USES edge).
// Parameters: technique, include_subtechniques, include_deprecated, platform, domain, vendor
//   ('' means any), limit.
// Columns: field, op, value, rules, reach.
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
WITH r, v, u.op AS op, u.negated AS negated, u.reach AS reach
WHERE negated = false AND op <> 'is_not_null'
WITH v, op, count(DISTINCT r) AS rules, max(reach) AS reach
RETURN v.field AS field, op, v.value AS value, rules, reach
ORDER BY rules DESC, reach DESC, field, op, value
LIMIT $limit
