// Coverage: every rule with its status, platforms, techniques and event types, deprecated
// rules included (coverage helpers classify them).
// Parameters: vendor ('' means any).
// Columns: uid, vendor, title, status, deprecated, platforms, techniques, event_types.
// :params {vendor: ''}
MATCH (r:Rule)
WHERE $vendor = '' OR r.vendor = $vendor
OPTIONAL MATCH (r)-[:DETECTS]->(t:Technique)
WITH r, collect(DISTINCT t.id) AS techniques
OPTIONAL MATCH (r)-[:OBSERVES]->(e:EventType)
RETURN r.uid AS uid, r.vendor AS vendor, r.title AS title, r.status AS status,
       r.deprecated AS deprecated, r.platforms AS platforms, techniques,
       collect(DISTINCT e.key) AS event_types
ORDER BY uid
