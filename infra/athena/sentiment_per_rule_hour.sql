-- Sentiment per rule per hour (Athena engine v3, workgroup "tweetlake").
-- The aggregates table holds additive partials (one per batch and Kafka partition): a window's figures
-- are the sum of its partials. The mean is over the scored posts that are not retweets (`scored`;
-- null in partials written before that column, when every tweet was scored).
SELECT value AS rule,
       window_start AS hour,
       SUM(tweets) AS tweets,
       SUM(retweets) AS retweets,
       SUM(positive) AS positive,
       SUM(neutral) AS neutral,
       SUM(negative) AS negative,
       SUM(score_sum) / NULLIF(SUM(COALESCE(scored, tweets)), 0) AS mean_score
FROM tweetlake.aggregates
WHERE dimension = 'rule' AND window_minutes = 60
GROUP BY value, window_start
ORDER BY hour, rule
