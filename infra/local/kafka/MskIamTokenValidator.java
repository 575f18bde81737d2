package tweetlake.local;

import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The local broker's check of an MSK IAM login token, so that the ingest producer's IAM path meets a
 * real broker end to end. The token is what MSK expects: a base64url-encoded, SigV4-presigned
 * {@code https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect...} URL. It passes only if
 * it decodes to such a URL, every SigV4 query parameter is present, it has not expired, the access key
 * is the one configured, and its signature equals the one this class computes independently from the
 * configured secret (service {@code kafka-cluster}, the empty payload's hash, signed header {@code host}). What only MSK can check: that the credentials belong to a real IAM principal and that
 * its policy allows {@code kafka-cluster:Connect} on the cluster.
 *
 * <p>JAAS options: {@code accessKey} and {@code secretKey} (the credentials tokens must be signed with).
 */
public final class MskIamTokenValidator implements AuthenticateCallbackHandler {
    private static final Logger LOG = LoggerFactory.getLogger(MskIamTokenValidator.class);
    private static final DateTimeFormatter AMZ_DATE =
            DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC);
    private static final Set<String> REQUIRED = Set.of("Action", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
            "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature");

    /** The payload hash of a presigned request without a body, as AWS's SDK signers compute it for MSK. */
    private static final String EMPTY_PAYLOAD_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    private String accessKey;
    private String secretKey;

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> jaas) {
        Map<String, ?> options = jaas.get(0).getOptions();
        accessKey = (String) options.get("accessKey");
        secretKey = (String) options.get("secretKey");
        if (accessKey == null || secretKey == null) {
            throw new IllegalArgumentException("MskIamTokenValidator needs the JAAS options accessKey and secretKey");
        }
    }

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        for (Callback c : callbacks) {
            if (!(c instanceof OAuthBearerValidatorCallback)) {
                throw new UnsupportedCallbackException(c);
            }
            OAuthBearerValidatorCallback v = (OAuthBearerValidatorCallback) c;
            try {
                v.token(validate(v.tokenValue(), Instant.now()));
            } catch (Exception e) {
                LOG.warn("MSK IAM token refused: {}", e.toString());
                v.error("invalid_token", null, null);
            }
        }
    }

    @Override
    public void close() {}

    /** The token's principal if it is valid at {@code now}; throws with the reason otherwise. */
    OAuthBearerToken validate(String token, Instant now) throws Exception {
        URI url = URI.create(new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8));
        if (!"https".equals(url.getScheme()) || url.getHost() == null || !url.getHost().startsWith("kafka.")) {
            throw new IllegalArgumentException("not an MSK connect URL: " + url);
        }
        Map<String, String> q = new TreeMap<>();
        for (String pair : url.getRawQuery().split("&")) {
            int eq = pair.indexOf('=');
            String k = URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8);
            String val = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
            q.put(k, val);
        }
        for (String k : REQUIRED) {
            if (!q.containsKey(k)) throw new IllegalArgumentException("missing " + k);
        }
        if (!"kafka-cluster:Connect".equals(q.get("Action"))) throw new IllegalArgumentException("wrong action");
        if (!"AWS4-HMAC-SHA256".equals(q.get("X-Amz-Algorithm"))) throw new IllegalArgumentException("wrong algorithm");
        if (!"host".equals(q.get("X-Amz-SignedHeaders"))) throw new IllegalArgumentException("wrong signed headers");
        String[] scope = q.get("X-Amz-Credential").split("/");
        if (scope.length != 5 || !scope[0].equals(accessKey) || !"kafka-cluster".equals(scope[3])
                || !"aws4_request".equals(scope[4]) || !url.getHost().equals("kafka." + scope[2] + ".amazonaws.com")) {
            throw new IllegalArgumentException("wrong credential scope");
        }
        Instant signedAt = AMZ_DATE.parse(q.get("X-Amz-Date"), Instant::from);
        Instant expires = signedAt.plusSeconds(Long.parseLong(q.get("X-Amz-Expires")));
        if (now.isAfter(expires) || signedAt.isAfter(now.plusSeconds(300))) throw new IllegalArgumentException("expired");

        // The canonical query: every parameter but the signature and the unsigned User-Agent, by key.
        StringBuilder canonicalQuery = new StringBuilder();
        for (Map.Entry<String, String> e : q.entrySet()) {
            if (e.getKey().equals("X-Amz-Signature") || e.getKey().equals("User-Agent")) continue;
            if (canonicalQuery.length() > 0) canonicalQuery.append('&');
            canonicalQuery.append(encode(e.getKey())).append('=').append(encode(e.getValue()));
        }
        String canonicalRequest =
                String.join("\n", "GET", "/", canonicalQuery, "host:" + url.getHost(), "", "host", EMPTY_PAYLOAD_SHA256);
        String stringToSign = String.join("\n", "AWS4-HMAC-SHA256", q.get("X-Amz-Date"),
                String.join("/", scope[1], scope[2], scope[3], scope[4]), hex(sha256(canonicalRequest)));
        byte[] key = ("AWS4" + secretKey).getBytes(StandardCharsets.UTF_8);
        for (String part : new String[] {scope[1], scope[2], scope[3], scope[4]}) key = hmac(key, part);
        String expected = hex(hmac(key, stringToSign));
        if (!MessageDigest.isEqual(expected.getBytes(StandardCharsets.UTF_8),
                q.get("X-Amz-Signature").getBytes(StandardCharsets.UTF_8))) {
            throw new IllegalArgumentException("signature mismatch");
        }
        long issuedMs = signedAt.toEpochMilli();
        long expiresMs = expires.toEpochMilli();
        String principal = accessKey;
        return new OAuthBearerToken() {
            @Override public String value() { return token; }
            @Override public Set<String> scope() { return Set.of(); }
            @Override public long lifetimeMs() { return expiresMs; }
            @Override public String principalName() { return principal; }
            @Override public Long startTimeMs() { return issuedMs; }
        };
    }

    /** SigV4's URI encoding: unreserved characters as they are, everything else %XX in upper case. */
    private static String encode(String s) {
        StringBuilder out = new StringBuilder();
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
                    || c == '.' || c == '~') {
                out.append(c);
            } else {
                out.append(String.format("%%%02X", b & 0xff));
            }
        }
        return out.toString();
    }

    private static byte[] sha256(String s) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] hmac(byte[] key, String data) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    }

    private static String hex(byte[] bytes) {
        StringBuilder out = new StringBuilder();
        for (byte b : bytes) out.append(String.format("%02x", b));
        return out.toString();
    }
}
