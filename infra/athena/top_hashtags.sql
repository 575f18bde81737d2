-- The most used hashtags (lower-cased) and their mean sentiment. Add a time range on the partition
-- column to scan less, e.g.  AND window_date >= current_date - INTERVAL '7' DAY
SELECT value AS hashtag,
       SUM(tweets) AS tweets,
       SUM(score_sum) / NULLIF(SUM(COALESCE(scored, tweets)), 0) AS mean_score
FROM tweetlake.aggregates
WHERE dimension = 'hashtag' AND window_minutes = 60
GROUP BY value
ORDER BY tweets DESC, hashtag
LIMIT 20
