// Authoring guide, rules by vendor: every rule detecting the technique.
// Parameters: technique, include_subtechniques, include_deprecated, platform, domain, vendor
//   ('' means any).
// Columns: vendor, uid, title, language, status, severity, parse_status, techniques.
// :params {technique: 'T1505', include_subtechniques: true, include_deprecated: false, platform: '', domain: '', vendor: ''}
MATCH (t:Technique)
WHERE t.id = $technique OR ($include_subtechniques AND t.parent = $technique)
MATCH (r:Rule)-[:DETECTS]->(t)
WITH r, t.id AS technique, r.deprecated AS deprecated, r.platforms AS platforms,
     r.domain AS domain, r.vendor AS vendor
WHERE ($include_deprecated OR deprecated = false)
  AND ($platform = '' OR $platform IN platforms)
  AND ($domain = '' OR domain = $domain) AND ($vendor = '' OR vendor = $vendor)
WITH r, vendor, collect(DISTINCT technique) AS techniques
RETURN vendor, r.uid AS uid, r.title AS title, r.language AS language,
       r.status AS status, r.severity AS severity, r.parse_status AS parse_status, techniques
ORDER BY vendor, title, uid
