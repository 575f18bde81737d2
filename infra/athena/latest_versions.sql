-- The latest version of every post: edited posts have a row per version written (each names the first
-- version in edit_root_id; ids grow with each edit); rows written before that column are their own post.
SELECT tweet_id, edit_root_id, created_at, kind, full_text, sentiment_label, sentiment_score
FROM (SELECT *,
             row_number() OVER (PARTITION BY coalesce(edit_root_id, tweet_id)
                                ORDER BY length(tweet_id) DESC, tweet_id DESC) AS n
      FROM tweetlake.tweets)
WHERE n = 1
ORDER BY created_at, tweet_id
