-- Why records went to quarantine: per quality rule, how many, when first and last, and one example error.
SELECT rule,
       COUNT(*) AS records,
       MIN(quarantined_at) AS first_seen,
       MAX(quarantined_at) AS last_seen,
       MIN(error) AS example_error
FROM tweetlake.quarantine
GROUP BY rule
ORDER BY records DESC, rule
