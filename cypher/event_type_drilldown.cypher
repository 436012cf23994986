// Drill-down by event type: the rules observing an event type, and the techniques they detect.
// Parameters: event_type (a key like sigma:windows/process_creation), include_deprecated.
// Columns: uid, title, vendor, status, deprecated, techniques.
// :params {event_type: 'sigma:windows/process_creation', include_deprecated: false}
MATCH (r:Rule)-[:OBSERVES]->(e:EventType {key: $event_type})
WHERE $include_deprecated OR r.deprecated = false
OPTIONAL MATCH (r)-[:DETECTS]->(t:Technique)
RETURN r.uid AS uid, r.title AS title, r.vendor AS vendor, r.status AS status,
       r.deprecated AS deprecated, collect(DISTINCT t.id) AS techniques
ORDER BY vendor, uid
