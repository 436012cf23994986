// Coverage: every current ATT&CK technique (not revoked, not deprecated) with its tactics and
// how much ATT&CK's own detection model says about it (strategies, analytics, data components).
// Parameters: none.
// Columns: id, name, tactics, tactic_ids, platforms, is_subtechnique, parent, strategies,
//   analytics, data_components.
// :params {}
MATCH (t:Technique)
WHERE t.revoked = false AND t.deprecated = false
OPTIONAL MATCH (t)-[:IN_TACTIC]->(ta:Tactic)
WITH t, collect(DISTINCT ta.id) AS tactic_ids
OPTIONAL MATCH (s:DetectionStrategy)-[:STRATEGY_FOR]->(t)
OPTIONAL MATCH (s)-[:HAS_ANALYTIC]->(a:Analytic)
OPTIONAL MATCH (a)-[:NEEDS]->(d:DataComponent)
RETURN t.id AS id, t.name AS name, t.tactics AS tactics, tactic_ids, t.platforms AS platforms,
       t.is_subtechnique AS is_subtechnique, t.parent AS parent,
       count(DISTINCT s) AS strategies, count(DISTINCT a) AS analytics,
       count(DISTINCT d) AS data_components
ORDER BY id
