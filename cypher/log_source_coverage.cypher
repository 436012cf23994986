// Log sources a technique needs and whether any rule observes them: for each technique, the
// ATT&CK data components its detection strategy's analytics need (with the log sources named),
// and the non-deprecated rules observing an event type that feeds the component. With
// unobserved_only, only the components no rule observes.
// Parameters: technique ('' means any), vendor ('' means any), unobserved_only.
// Columns: technique, name, data_component, component, log_sources, analytics, rules.
// :params {technique: '', vendor: '', unobserved_only: true}
MATCH (d:DataComponent)
OPTIONAL MATCH (r:Rule)-[:OBSERVES]->(:EventType)-[:FEEDS]->(d)
WHERE r.deprecated = false AND ($vendor = '' OR r.vendor = $vendor)
WITH d, count(DISTINCT r) AS rules
WHERE rules = 0 OR NOT $unobserved_only
MATCH (s:DetectionStrategy)-[:HAS_ANALYTIC]->(a:Analytic)-[n:NEEDS]->(d)
MATCH (s)-[:STRATEGY_FOR]->(t:Technique)
WHERE ($technique = '' OR t.id = $technique) AND t.revoked = false AND t.deprecated = false
WITH t, d, rules, collect(DISTINCT n.log_source) AS log_sources, count(DISTINCT a) AS analytics
RETURN t.id AS technique, t.name AS name, d.id AS data_component, d.name AS component,
       log_sources, analytics, rules
ORDER BY technique, data_component
