-- Sentiment per rule per hour (Athena engine v3, workgroup "tweetlake").
-- The aggregates table holds additive partials (one per batch and Kafka partition): a window's figures
-- are the sum of its partials. The mean is over the scored posts that are not retweets (`scored`;
-- null in partials written before that column, when every tweet was scored). The shares are the
-- three-class model's expected share of each class: its probabilities summed over the posts that have
-- them (`prob_rows`), unbiased where the label counts follow the label's decision rule.
SELECT value AS rule,
       window_start AS hour,
       SUM(tweets) AS tweets,
       SUM(retweets) AS retweets,
       SUM(positive) AS positive,
       SUM(neutral) AS neutral,
       SUM(negative) AS negative,
       SUM(score_sum) / NULLIF(SUM(COALESCE(scored, tweets)), 0) AS mean_score,
       SUM(negative_prob_sum) / NULLIF(SUM(prob_rows), 0) AS negative_share,
       SUM(neutral_prob_sum) / NULLIF(SUM(prob_rows), 0) AS neutral_share,
       SUM(positive_prob_sum) / NULLIF(SUM(prob_rows), 0) AS positive_share
FROM tweetlake.aggregates
WHERE dimension = 'rule' AND window_minutes = 60
GROUP BY value, window_start
ORDER BY hour, rule
