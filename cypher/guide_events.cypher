// Authoring guide, events covered: the event types the technique's rules observe.
// Parameters: technique, include_subtechniques, include_deprecated, platform, domain, vendor
//   ('' means any), limit.
// Columns: event_type, name, source, rules.
// :params {technique: 'T1505', include_subtechniques: true, include_deprecated: false, platform: '', domain: '', vendor: '', limit: 25}
MATCH (t:Technique)<-[:DETECTS]-(r:Rule)-[:OBSERVES]->(e:EventType)
WHERE t.id = $technique OR ($include_subtechniques AND t.parent = $technique)
WITH r, e, r.deprecated AS deprecated, r.platforms AS platforms, r.domain AS domain,
     r.vendor AS vendor
WHERE ($include_deprecated OR deprecated = false)
  AND ($platform = '' OR $platform IN platforms)
  AND ($domain = '' OR domain = $domain) AND ($vendor = '' OR vendor = $vendor)
RETURN e.key AS event_type, e.name AS name, e.source AS source, count(DISTINCT r) AS rules
ORDER BY rules DESC, event_type
LIMIT $limit
