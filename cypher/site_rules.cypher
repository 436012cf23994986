// Site batch: every rule with the columns of the `rule` query (metadata, text, condition,
// techniques, event types), deprecated rules included.
// Parameters: none.
// Columns: uid, vendor, native_id, title, language, path, source, commit, status,
//   deprecated, severity, platforms, domain, parse_status, problem_count, properties,
//   text, condition (the tree as JSON), techniques, event_types.
// :params {}
MATCH (r:Rule)
OPTIONAL MATCH (r)-[:DETECTS]->(t:Technique)
WITH r, collect(DISTINCT t.id) AS techniques
OPTIONAL MATCH (r)-[:OBSERVES]->(e:EventType)
RETURN r.uid AS uid, r.vendor AS vendor, r.native_id AS native_id, r.title AS title,
       r.language AS language, r.path AS path, r.source AS source, r.commit AS commit,
       r.status AS status, r.deprecated AS deprecated, r.severity AS severity,
       r.platforms AS platforms, r.domain AS domain, r.parse_status AS parse_status,
       r.problem_count AS problem_count, r.properties AS properties, r.text AS text,
       r.condition AS condition, techniques,
       collect(DISTINCT e.key) AS event_types
ORDER BY uid
