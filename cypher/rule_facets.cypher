// The values the guide's filters take: each vendor, platform and domain, with its rule count.
// Parameters: none.
// Columns: facet (vendor, platform or domain), value, rules.
// :params {}
UNWIND ['domain', 'platform', 'vendor'] AS facet
MATCH (r:Rule)
UNWIND CASE facet WHEN 'vendor' THEN [r.vendor] WHEN 'domain' THEN [r.domain]
       ELSE r.platforms END AS value
RETURN facet, value, count(DISTINCT r) AS rules
ORDER BY facet, value
