<?php
/**
 * postwarden_client.php - the Roundcube plugin's side of postwarden's account API.
 *
 * Every call is made by Roundcube's PHP on the server, never by the browser: the browser
 * talks to Roundcube only, so postwarden's listener can stay on loopback and its session
 * cookie never reaches the user's browser. The plugin signs the user in with an SSO
 * assertion (the address of the Roundcube user, HMAC-SHA256 with the shared sso_secret,
 * valid for a short time), keeps postwarden's session cookie and CSRF token in Roundcube's
 * session, and signs in again once when postwarden answers 401 (session expired).
 */
class postwarden_client
{
    /* Answers larger than this are refused: the API's answers are small JSON documents. */
    const MAX_ANSWER = 1048576;
    /* Lifetime of an assertion; postwarden accepts at most 300 seconds. */
    const ASSERTION_TTL = 120;

    private $url;
    private $secret;
    private $address;
    private $timeout;
    private $ca_file;
    /* ['cookie' => pw_session value, 'csrf' => token] or null; shared with the caller */
    private $session;

    public function __construct($url, $secret, $address, $timeout = 10, $ca_file = null,
                                $session = null)
    {
        $this->url     = rtrim((string) $url, '/');
        $this->secret  = (string) $secret;
        $this->address = (string) $address;
        $this->timeout = max(1, (int) $timeout);
        $this->ca_file = $ca_file;
        $this->session = is_array($session) ? $session : null;
    }

    /** The session to keep for the next request (null when there is none). */
    public function session()
    {
        return $this->session;
    }

    public static function b64url($bin)
    {
        return rtrim(strtr(base64_encode($bin), '+/', '-_'), '=');
    }

    /**
     * An SSO assertion for $address: base64url(JSON {"sub","exp"}) "." base64url(HMAC-SHA256
     * over the first part, keyed with the secret).
     */
    public static function assertion($address, $secret, $now = null, $ttl = self::ASSERTION_TTL)
    {
        $now     = $now === null ? time() : (int) $now;
        $payload = json_encode(['sub' => (string) $address, 'exp' => $now + (int) $ttl],
                               JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        $head    = self::b64url($payload);
        return $head . '.' . self::b64url(hash_hmac('sha256', $head, $secret, true));
    }

    /** Sign in with an assertion; true on success, else the error text. */
    public function sso()
    {
        $this->session = null;
        if (strlen($this->secret) < 32) {
            return 'postwarden_sso_secret must be at least 32 characters';
        }
        $r = $this->raw('POST', '/v1/session/sso',
                        ['assertion' => self::assertion($this->address, $this->secret)]);
        // both go into request headers later: only token characters are taken
        if ($r['status'] != 200 || empty($r['cookie']) || !is_array($r['json'])
            || !is_string($r['json']['csrf'] ?? null)
            || !preg_match('/^[A-Za-z0-9._~+\/=-]{1,256}$/', $r['json']['csrf'])
        ) {
            return self::error_text($r);
        }
        $this->session = ['cookie' => $r['cookie'], 'csrf' => (string) $r['json']['csrf']];
        return true;
    }

    /**
     * A call as the signed-in user: ['status' => HTTP status (0: not reached), 'json' =>
     * decoded answer or null, 'error' => text or null]. Signs in first when needed, and
     * once more when the session has expired.
     */
    public function call($method, $path, $body = null)
    {
        for ($try = 0; $try < 2; $try++) {
            if ($this->session === null && ($err = $this->sso()) !== true) {
                return ['status' => 0, 'json' => null, 'error' => $err];
            }
            $r = $this->raw($method, $path, $body);
            if ($r['status'] != 401) {
                break;
            }
            $this->session = null;
        }
        $r['error'] = ($r['status'] >= 200 && $r['status'] < 300) ? null : self::error_text($r);
        return $r;
    }

    /** The text to show for a failed answer: postwarden's {"error"} or what went wrong. */
    public static function error_text($r)
    {
        if (is_array($r['json']) && isset($r['json']['error']) && is_string($r['json']['error'])) {
            return $r['json']['error'];
        }
        if ($r['status'] == 0) {
            return 'postwarden cannot be reached' . (empty($r['why']) ? '' : ': ' . $r['why']);
        }
        return 'postwarden answered HTTP ' . $r['status'];
    }

    /** One HTTP request; never throws. */
    private function raw($method, $path, $body)
    {
        $headers = ['Accept: application/json', 'Connection: close'];
        if ($body !== null) {
            $headers[] = 'Content-Type: application/json';
        }
        if ($this->session !== null) {
            $headers[] = 'Cookie: pw_session=' . $this->session['cookie'];
            if ($method != 'GET') {
                $headers[] = 'X-CSRF-Token: ' . $this->session['csrf'];
            }
        }
        $http = [
            'method'          => $method,
            'ignore_errors'   => true,     // read the body of 4xx/5xx answers too
            'timeout'         => $this->timeout,
            'follow_location' => 0,
            'protocol_version' => 1.1,
        ];
        if ($body !== null) {
            $http['content'] = json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        }
        $http['header'] = implode("\r\n", $headers);
        $ssl = ['verify_peer' => true, 'verify_peer_name' => true];
        if ($this->ca_file) {
            $ssl['cafile'] = $this->ca_file;
        }
        $ctx  = stream_context_create(['http' => $http, 'ssl' => $ssl]);
        $out  = ['status' => 0, 'json' => null, 'cookie' => null, 'why' => null];
        // PHP reports a failed connection in several warnings (a TLS failure's reason
        // comes before the final "operation failed"): keep them all for the error text
        $why = [];
        set_error_handler(function ($no, $msg) use (&$why) {
            $why[] = preg_replace('/^fopen\(.*?\): /', '', $msg);
            return true;
        });
        try {
            $fp = fopen($this->url . $path, 'r', false, $ctx);
        }
        finally {
            restore_error_handler();
        }
        if ($fp === false) {
            $out['why'] = $why ? implode('; ', array_unique($why)) : null;
            return $out;
        }
        $meta = stream_get_meta_data($fp);
        $text = stream_get_contents($fp, self::MAX_ANSWER + 1);
        fclose($fp);
        foreach ((array) ($meta['wrapper_data'] ?? []) as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
                $out['status'] = (int) $m[1];
            }
            else if (preg_match('/^Set-Cookie:\s*pw_session=([A-Za-z0-9._~+\/=-]{1,256})(;|$)/i', $line, $m)) {
                $out['cookie'] = $m[1];
            }
        }
        if ($text !== false && strlen($text) <= self::MAX_ANSWER) {
            $json = json_decode($text, true);
            $out['json'] = is_array($json) ? $json : null;
        }
        return $out;
    }
}
