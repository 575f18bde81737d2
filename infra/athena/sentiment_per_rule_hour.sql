-- Sentiment per rule per hour (Athena engine v3, workgroup "tweetlake").
-- The aggregates table holds additive partials (one per batch and Kafka partition): a window's figures
-- are the sum of its partials.
SELECT value AS rule,
       window_start AS hour,
       SUM(tweets) AS tweets,
       SUM(positive) AS positive,
       SUM(neutral) AS neutral,
       SUM(negative) AS negative,
       SUM(score_sum) / SUM(tweets) AS mean_score
FROM tweetlake.aggregates
WHERE dimension = 'rule' AND window_minutes = 60
GROUP BY value, window_start
ORDER BY hour, rule
