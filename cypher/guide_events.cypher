// Authoring guide, events covered: the event types the technique's rules observe.
// Parameters: technique, include_subtechniques, include_deprecated, platform, domain, vendor
//   ('' means any), limit.
// Columns: event_type, name, source, rules.
// :params {technique: 'T1505', include_subtechniques: true, include_deprecated: false, platform: '', domain: '', vendor: '', limit: 25}
MATCH (t:Technique)
WHERE t.id = $technique OR ($include_subtechniques AND t.parent = $technique)
MATCH (r:Rule)-[:DETECTS]->(t)
WHERE ($include_deprecated OR r.deprecated = false)
  AND ($platform = '' OR $platform IN r.platforms)
  AND ($domain = '' OR r.domain = $domain) AND ($vendor = '' OR r.vendor = $vendor)
WITH DISTINCT r
MATCH (r)-[:OBSERVES]->(e:EventType)
RETURN e.key AS event_type, e.name AS name, e.source AS source, count(DISTINCT r) AS rules
ORDER BY rules DESC, event_type
LIMIT $limit
