// The catalogue by vendor: rules, parse status counts, techniques covered.
// Parameters: none.
// Columns: vendor, rules, parsed_full, parsed_partial, unparsed, no_query, deprecated,
//   techniques.
// :params {}
MATCH (r:Rule)
WITH r.vendor AS vendor, count(r) AS rules,
     sum(CASE WHEN r.parse_status = 'full' THEN 1 ELSE 0 END) AS parsed_full,
     sum(CASE WHEN r.parse_status = 'partial' THEN 1 ELSE 0 END) AS parsed_partial,
     sum(CASE WHEN r.parse_status = 'none' THEN 1 ELSE 0 END) AS unparsed,
     sum(CASE WHEN r.parse_status = 'no_query' THEN 1 ELSE 0 END) AS no_query,
     sum(CASE WHEN r.deprecated THEN 1 ELSE 0 END) AS deprecated
OPTIONAL MATCH (tagged:Rule {vendor: vendor})-[:DETECTS]->(t:Technique)
RETURN vendor, rules, parsed_full, parsed_partial, unparsed, no_query, deprecated,
       count(DISTINCT t) AS techniques
ORDER BY vendor
