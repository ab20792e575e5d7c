<?php
/**
 * postwarden.php - Roundcube 1.6 plugin for postwarden's user side.
 *
 * Adds to Roundcube:
 *  - Settings > Mail security: the TLS-sending guarantee (on, off, off for an hour or a
 *    day), held messages (why each was stopped; release one or all), keys (where each is
 *    published and whether it validates now; upload, remove), the notifications of the
 *    last 7 days (held or returned recipients, and why) and moving mail from another
 *    provider (a preset or a server; start, progress, cancel), all through postwarden's
 *    account API;
 *  - in the compose window, per recipient, a lock icon (how the message would leave: DANE,
 *    verified TLS, stopped, or plaintext) and a key icon (the best key found), with the
 *    reason as the icons' title, updated whenever the recipients change.
 *
 * The browser never talks to postwarden: Roundcube's PHP does, signed in for the
 * logged-in user with an SSO assertion (see postwarden_client.php). Configuration:
 * config.inc.php.dist.
 */
require_once __DIR__ . '/postwarden_client.php';

class postwarden extends rcube_plugin
{
    public $task = 'mail|settings';

    /* The API takes at most 100 addresses per status request. */
    const MAX_RECIPIENTS = 100;
    const MAX_ADDRESS    = 320;
    const MAX_KEY_BYTES  = 65536;
    /* Migration jobs shown with their progress (the first ones the API lists). */
    const MAX_JOBS_SHOWN = 10;
    /* The notifications section covers this many days (the API's default). */
    const NOTIFICATION_DAYS = 7;
    /* The old providers postwarden knows (docs/migrate.md, "Presets"), as the settings
     * page offers them; 'other' takes the server field. Names are not translated. */
    const PRESETS = ['gmx' => 'GMX', 'gmail' => 'Gmail', 'icloud' => 'iCloud',
                     'outlook' => 'Outlook.com', 'yahoo' => 'Yahoo', 'aol' => 'AOL',
                     'webde' => 'WEB.DE'];

    private $rc;

    public function init()
    {
        $this->rc = rcmail::get_instance();
        $this->load_config();
        $this->add_texts('localization/', false);

        if ($this->rc->task == 'mail') {
            $this->register_action('plugin.postwarden-status', [$this, 'action_status']);
            if ($this->rc->action == 'compose' && $this->rc->config->get('postwarden_compose_status', true)) {
                $this->compose_assets();
            }
        }
        else if ($this->rc->task == 'settings') {
            $this->add_hook('settings_actions', [$this, 'settings_actions']);
            $this->register_action('plugin.postwarden', [$this, 'action_settings']);
            $this->register_action('plugin.postwarden-do', [$this, 'action_do']);
        }
    }

    /**
     * The client for the logged-in user, with the postwarden session kept so far. The
     * address vouched for is the IMAP login (get_user_email derives it from the login
     * name), never an identity's address, which the user may edit.
     */
    private function client()
    {
        $cfg = $this->rc->config;
        return new postwarden_client(
            $cfg->get('postwarden_api_url'), $cfg->get('postwarden_sso_secret'),
            $this->rc->get_user_email(), $cfg->get('postwarden_timeout', 10),
            $cfg->get('postwarden_ca_file'), $_SESSION['postwarden'] ?? null);
    }

    /** Call the API and keep the (possibly new) session for the next request. */
    private function api($method, $path, $body = null)
    {
        $c = $this->client();
        $r = $c->call($method, $path, $body);
        $_SESSION['postwarden'] = $c->session();
        if ($r['error'] !== null) {
            rcube::write_log('errors', "postwarden: $method $path: " . $r['error']);
            $r['error'] = $this->error_text($r);
        }
        return $r;
    }

    /**
     * A failed answer in the user's language: the text for postwarden's error code (label
     * "err" and the code without "_", with $error for postwarden's English detail), else
     * postwarden's own text.
     */
    private function error_text($r)
    {
        $code = $r['json']['code'] ?? null;
        if (!is_string($code) || !preg_match('/^[a-z_]{1,40}$/', $code)) {
            return $r['error'];
        }
        $label = 'err' . str_replace('_', '', $code);
        if (!$this->rc->text_exists($label, 'postwarden')) {
            return $r['error'];
        }
        return $this->gettext(['name' => $label, 'vars' => ['error' => $r['error']]]);
    }

    // -- compose ---------------------------------------------------------------------

    private function compose_assets()
    {
        $this->include_script('postwarden.js');
        $this->include_stylesheet('postwarden.css');
        $this->add_texts('localization/', ['lockdane', 'locktls', 'lockstop', 'lockplain',
            'lockunknown', 'lockpending', 'keyfound', 'keynone', 'keyunknown', 'keypending',
            'unreachable']);
        $this->rc->output->set_env('postwarden_compose', true);
    }

    /**
     * AJAX: the status of the recipients in _recipients (a JSON array of addresses),
     * answered with the command plugin.postwarden_status {"recipients": [...]} or
     * {"error": text}.
     */
    public function action_status()
    {
        $raw  = rcube_utils::get_input_string('_recipients', rcube_utils::INPUT_POST);
        $list = json_decode((string) $raw, true);
        $want = [];
        if (is_array($list)) {
            foreach ($list as $a) {
                if (is_string($a) && strlen($a) <= self::MAX_ADDRESS && strpos($a, '@') !== false) {
                    $want[strtolower(trim($a))] = true;
                }
                if (count($want) >= self::MAX_RECIPIENTS) {
                    break;
                }
            }
        }
        $out = ['recipients' => []];
        if ($want) {
            $r = $this->api('POST', '/v1/recipients/status', ['recipients' => array_keys($want)]);
            if ($r['error'] !== null || !isset($r['json']['recipients'])
                || !is_array($r['json']['recipients'])
            ) {
                $out = ['error' => $r['error'] ?? 'postwarden gave no recipient list'];
            }
            else {
                foreach ($r['json']['recipients'] as $e) {
                    if (is_array($e) && isset($e['address'])) {
                        $out['recipients'][] = self::status_entry($e);
                    }
                }
            }
        }
        $this->rc->output->command('plugin.postwarden_status', $out);
        $this->rc->output->send();
    }

    /** Only the members the compose window shows, as strings. */
    private static function status_entry($e)
    {
        $key = null;
        if (isset($e['key']) && is_array($e['key'])) {
            $key = [];
            foreach (['type', 'fingerprint', 'source', 'trust'] as $k) {
                $key[$k] = isset($e['key'][$k]) && is_scalar($e['key'][$k]) ? (string) $e['key'][$k] : '';
            }
        }
        $t = isset($e['transport']) ? (string) $e['transport'] : '';
        return [
            'address'   => strtolower((string) $e['address']),
            'transport' => in_array($t, ['dane', 'tls', 'stop', 'plaintext']) ? $t : 'unknown',
            'reason'    => isset($e['reason']) && is_string($e['reason']) ? $e['reason'] : '',
            'key'       => $key,
            // still being looked up by postwarden: asked again a moment later
            'pending'   => !empty($e['pending']),
        ];
    }

    // -- settings ----------------------------------------------------------------------

    public function settings_actions($args)
    {
        $args['actions'][] = [
            'action' => 'plugin.postwarden',
            'class'  => 'postwarden',
            'label'  => 'title',
            'title'  => 'title',
            'domain' => 'postwarden',
        ];
        return $args;
    }

    public function action_settings()
    {
        $this->include_stylesheet('postwarden.css');
        $this->register_handler('plugin.body', [$this, 'settings_body']);
        $this->rc->output->set_pagetitle($this->gettext('title'));
        $this->rc->output->send('plugin');
    }

    /** POST from one of the settings forms: do it, then show the page again. */
    public function action_do()
    {
        $this->rc->request_security_check(rcube_utils::INPUT_POST);
        $op  = rcube_utils::get_input_string('_op', rcube_utils::INPUT_POST);
        $id  = rcube_utils::get_input_string('_id', rcube_utils::INPUT_POST);
        $eid = rawurlencode($id);
        $r   = null;
        switch ($op) {
        case 'guarantee-on':
            $r = $this->api('PUT', '/v1/guarantee', ['enabled' => true]);
            break;
        case 'guarantee-off':
            $r = $this->api('PUT', '/v1/guarantee', ['enabled' => false]);
            break;
        case 'guarantee-off-1h':
            $r = $this->api('PUT', '/v1/guarantee', ['enabled' => false, 'for' => 3600]);
            break;
        case 'guarantee-off-1d':
            $r = $this->api('PUT', '/v1/guarantee', ['enabled' => false, 'for' => 86400]);
            break;
        case 'release':
            $r = $this->api('POST', "/v1/held/$eid/release", new stdClass());
            break;
        case 'release-all':
            $r = $this->api('POST', '/v1/held/release', new stdClass());
            break;
        case 'key-add':
            $key = rcube_utils::get_input_string('_key', rcube_utils::INPUT_POST, true);
            $r   = strlen($key) > self::MAX_KEY_BYTES
                ? ['error' => $this->gettext('keytoolarge')]
                : $this->api('POST', '/v1/keys', ['key' => $key]);
            break;
        case 'key-remove':
            $r = $this->api('DELETE', "/v1/keys/$eid");
            break;
        case 'migration-start':
            $body = $this->migration_source();
            if (is_string($body)) {
                $r = ['error' => $body];
                break;
            }
            $body += [
                'source_user'     => rcube_utils::get_input_string('_source_user', rcube_utils::INPUT_POST),
                'source_password' => rcube_utils::get_input_string('_source_password', rcube_utils::INPUT_POST, true),
            ];
            // postwarden logs in to the destination as the user: with the password the
            // user signed in to Roundcube with, unless postwarden has a master user there
            if ($this->rc->config->get('postwarden_migration_own_password', true)) {
                $body['destination_password'] = (string) $this->rc->get_user_password();
            }
            $r = $this->api('POST', '/v1/migrations', $body);
            break;
        case 'migration-cancel':
            $r = $this->api('DELETE', "/v1/migrations/$eid");
            break;
        }
        $_SESSION['postwarden_notice'] = $r === null ? ['error', $this->gettext('unknownop')]
            : ($r['error'] !== null ? ['error', $r['error']] : ['confirmation', $this->gettext('done')]);
        $this->rc->output->redirect(['action' => 'plugin.postwarden',
            '_framed' => rcube_utils::get_input_string('_framed', rcube_utils::INPUT_GPC) ? 1 : null]);
    }

    /**
     * The start of a mail job's body from the form: {"kind", "source"} with a preset's
     * name (and, when postwarden_migration_hosts names one for it, "source_host": that
     * server instead of the preset's), or the server typed for another provider as an
     * imaps:// URL unless it names its scheme. A text to show when neither was given.
     */
    private function migration_source()
    {
        $preset = rcube_utils::get_input_string('_preset', rcube_utils::INPUT_POST);
        $body   = ['kind' => 'mail'];
        if (isset(self::PRESETS[$preset])) {
            $body['source'] = $preset;
            $hosts = (array) $this->rc->config->get('postwarden_migration_hosts', []);
            if (isset($hosts[$preset]) && is_string($hosts[$preset]) && $hosts[$preset] !== '') {
                $body['source_host'] = $hosts[$preset];
            }
            return $body;
        }
        if ($preset !== '' && $preset !== 'other') {
            return $this->gettext('nopreset');
        }
        $server = trim(rcube_utils::get_input_string('_source', rcube_utils::INPUT_POST));
        if ($server === '') {
            return $this->gettext('noserver');
        }
        $body['source'] = strpos($server, '://') === false ? 'imaps://' . $server : $server;
        return $body;
    }

    public function settings_body()
    {
        $html = '';
        if (!empty($_SESSION['postwarden_notice'])) {
            list($type, $text) = $_SESSION['postwarden_notice'];
            unset($_SESSION['postwarden_notice']);
            $html .= html::div(['class' => 'postwarden-notice postwarden-' . $type, 'role' => 'status'],
                               rcube::Q($text));
        }
        $html .= $this->section_guarantee() . $this->section_held()
            . $this->section_notifications() . $this->section_keys() . $this->section_migrations();
        return html::div(['class' => 'postwarden-settings formcontent', 'id' => 'postwarden-settings'],
                         html::tag('h1', ['class' => 'voice'], rcube::Q($this->gettext('title'))) . $html);
    }

    /** A small POST form for one operation, with the request token. */
    private function form($op, $label, $fields = '', $id = null)
    {
        $hidden = new html_hiddenfield(['name' => '_op', 'value' => $op]);
        $extra  = $id === null ? '' : html::tag('input', ['type' => 'hidden', 'name' => '_id', 'value' => $id]);
        // form_tag adds the request token, and _framed when the page is framed
        return $this->rc->output->form_tag(['method' => 'post', 'class' => 'postwarden-form',
                'action' => './?_task=settings&_action=plugin.postwarden-do'],
            $hidden->show() . $extra . $fields
            . html::tag('button', ['type' => 'submit', 'class' => 'button', 'name' => '_submit',
                                   'value' => $op, 'data-op' => $op], rcube::Q($label)));
    }

    private function section($id, $title, $content)
    {
        return html::tag('fieldset', ['id' => 'postwarden-' . $id],
            html::tag('legend', null, rcube::Q($this->gettext($title))) . $content);
    }

    private function failed($r)
    {
        return html::p(['class' => 'postwarden-error', 'role' => 'alert'], rcube::Q($r['error']));
    }

    private function when($unix)
    {
        return is_numeric($unix) ? $this->rc->format_date((int) $unix) : rcube::Q((string) $unix);
    }

    private function section_guarantee()
    {
        $r = $this->api('GET', '/v1/guarantee');
        if ($r['error'] !== null) {
            return $this->section('guarantee', 'guarantee', $this->failed($r));
        }
        $g = $r['json'];
        if (!empty($g['active'])) {
            $state = $this->gettext('guaranteeon');
        }
        else if (!empty($g['off_until'])) {
            $state = $this->gettext(['name' => 'guaranteeoffuntil',
                                     'vars' => ['time' => $this->when($g['off_until'])]]);
        }
        else {
            $state = $this->gettext('guaranteeoff');
        }
        $html = html::p(null, rcube::Q($this->gettext('guaranteeexplain')))
            . html::p(['class' => 'postwarden-state', 'data-active' => empty($g['active']) ? '0' : '1'],
                      rcube::Q($state));
        if (empty($g['active'])) {
            $html .= $this->form('guarantee-on', $this->gettext('turnon'));
        }
        else {
            $html .= $this->form('guarantee-off', $this->gettext('turnoff'))
                . $this->form('guarantee-off-1h', $this->gettext('off1h'))
                . $this->form('guarantee-off-1d', $this->gettext('off1d'));
        }
        return $this->section('guarantee', 'guarantee', $html);
    }

    private function section_held()
    {
        $r = $this->api('GET', '/v1/held');
        if ($r['error'] !== null) {
            return $this->section('held', 'held', $this->failed($r));
        }
        $msgs = isset($r['json']['messages']) && is_array($r['json']['messages']) ? $r['json']['messages'] : [];
        if (!$msgs) {
            return $this->section('held', 'held', html::p(null, rcube::Q($this->gettext('noheld'))));
        }
        $t = new html_table(['class' => 'postwarden-held propform', 'cols' => 4]);
        $t->add_header(null, rcube::Q($this->gettext('date')));
        $t->add_header(null, rcube::Q($this->gettext('subject')));
        $t->add_header(null, rcube::Q($this->gettext('recipientswhy')));
        $t->add_header(null, '');
        foreach ($msgs as $m) {
            $why = '';
            foreach ((array) ($m['recipients'] ?? []) as $rc) {
                $why .= html::tag('li', null, rcube::Q(($rc['address'] ?? '') . ': ' . ($rc['reason'] ?? '')));
            }
            $t->add(null, $this->when($m['date'] ?? ''));
            $t->add(null, rcube::Q((string) ($m['subject'] ?? '')));
            $t->add(null, html::tag('ul', null, $why));
            $t->add(null, $this->form('release', $this->gettext('release'), '', (string) ($m['id'] ?? '')));
        }
        return $this->section('held', 'held', $t->show() . $this->form('release-all', $this->gettext('releaseall')));
    }

    /** What happened to the user's messages lately: recipients held or returned, and why. */
    private function section_notifications()
    {
        $r = $this->api('GET', '/v1/notifications?days=' . self::NOTIFICATION_DAYS);
        if ($r['error'] !== null) {
            return $this->section('notifications', 'notifications', $this->failed($r));
        }
        $list = isset($r['json']['notifications']) && is_array($r['json']['notifications'])
            ? $r['json']['notifications'] : [];
        if (!$list) {
            return $this->section('notifications', 'notifications',
                                  html::p(null, rcube::Q($this->gettext('nonotifications'))));
        }
        $t = new html_table(['class' => 'postwarden-notifications propform', 'cols' => 3]);
        $t->add_header(null, rcube::Q($this->gettext('date')));
        $t->add_header(null, rcube::Q($this->gettext('recipient')));
        $t->add_header(null, rcube::Q($this->gettext('why')));
        foreach ($list as $n) {
            if (!is_array($n)) {
                continue;
            }
            // postwarden's text is a whole sentence ("Your message to ... is held: ...");
            // the kind alone only stands in when there is none
            $kind = isset($n['kind']) && is_string($n['kind']) ? $n['kind'] : '';
            $why  = isset($n['text']) && is_string($n['text']) && $n['text'] !== '' ? $n['text']
                  : (in_array($kind, ['held', 'bounced']) ? $this->gettext('notif' . $kind) : $kind);
            $t->add_row(['data-kind' => $kind]);
            $t->add(null, $this->when($n['date'] ?? ''));
            $t->add(null, rcube::Q(isset($n['recipient']) && is_string($n['recipient']) ? $n['recipient'] : ''));
            $t->add(null, rcube::Q($why));
        }
        return $this->section('notifications', 'notifications', $t->show());
    }

    private function section_keys()
    {
        $r = $this->api('GET', '/v1/keys');
        if ($r['error'] !== null) {
            return $this->section('keys', 'keys', $this->failed($r));
        }
        $keys = isset($r['json']['keys']) && is_array($r['json']['keys']) ? $r['json']['keys'] : [];
        $list = '';
        foreach ($keys as $k) {
            $pub = '';
            foreach ((array) ($k['published'] ?? []) as $p) {
                if (($p['kind'] ?? '') == 'dns') {
                    $pub .= html::tag('li', null, rcube::Q('DNS ' . ($p['name'] ?? '') . ' - '
                        . $this->gettext(!empty($p['validates']) ? 'validates' : 'notvalidating')));
                }
                else if (($p['kind'] ?? '') == 'wkd') {
                    $pub .= html::tag('li', null, rcube::Q('WKD ' . ($p['url'] ?? '')));
                }
            }
            $list .= html::tag('li', ['class' => 'postwarden-key'],
                html::span('postwarden-keytype', rcube::Q(strtoupper((string) ($k['type'] ?? ''))))
                . ' ' . html::tag('code', null, rcube::Q((string) ($k['fingerprint'] ?? '')))
                . ' ' . rcube::Q(implode(', ', (array) ($k['addresses'] ?? [])))
                . html::tag('ul', null, $pub)
                . $this->form('key-remove', $this->gettext('remove'), '', (string) ($k['id'] ?? '')));
        }
        $html = $list ? html::tag('ul', ['class' => 'postwarden-keys'], $list)
                      : html::p(null, rcube::Q($this->gettext('nokeys')));
        $area = new html_textarea(['name' => '_key', 'id' => 'postwarden-key', 'rows' => 6, 'cols' => 64,
                                   'class' => 'form-control']);
        $html .= $this->form('key-add', $this->gettext('addkey'),
            html::label('postwarden-key', rcube::Q($this->gettext('keytext'))) . $area->show());
        return $this->section('keys', 'keys', $html);
    }

    /** One job: its state and, from the job's own record, how far it got. */
    private function job_line($j)
    {
        $id = isset($j['id']) && is_scalar($j['id']) ? (string) $j['id'] : '';
        $d  = $this->api('GET', '/v1/migrations/' . rawurlencode($id));
        if ($d['error'] === null && is_array($d['json'])) {
            $j = array_merge($j, $d['json']);
        }
        $state = isset($j['state']) && is_string($j['state']) ? $j['state'] : '';
        $label = in_array($state, ['running', 'done', 'partial', 'failed', 'cancelled',
                                   'cancelling', 'interrupted']) ? $this->gettext('job' . $state) : $state;
        $text  = $label;
        if (!empty($j['messages_total']) && isset($j['messages_done']) && is_numeric($j['messages_done'])) {
            $pct   = (int) floor(100 * $j['messages_done'] / max(1, (int) $j['messages_total']));
            $text .= ' ' . $this->gettext(['name' => 'jobprogress', 'vars' => [
                'percent' => $pct, 'done' => (int) $j['messages_done'], 'total' => (int) $j['messages_total']]]);
        }
        if (!empty($j['error']) && is_string($j['error'])) {
            $text .= ' - ' . $j['error'];
        }
        return html::tag('li', ['class' => 'postwarden-job', 'data-state' => $state, 'data-id' => $id],
            rcube::Q($text)
            . ($state == 'running' ? $this->form('migration-cancel', $this->gettext('cancel'), '', $id) : ''));
    }

    private function section_migrations()
    {
        $r = $this->api('GET', '/v1/migrations');
        if ($r['error'] !== null) {
            return $this->section('migration', 'migration', $this->failed($r));
        }
        $jobs = isset($r['json']['jobs']) && is_array($r['json']['jobs']) ? $r['json']['jobs'] : [];
        $list = '';
        foreach (array_slice($jobs, 0, self::MAX_JOBS_SHOWN) as $j) {
            $list .= $this->job_line($j);
        }
        $preset = new html_select(['name' => '_preset', 'id' => 'postwarden-preset', 'class' => 'form-control']);
        foreach (self::PRESETS as $value => $name) {
            $preset->add($name, $value);
        }
        $preset->add($this->gettext('presetother'), 'other');
        $src  = new html_inputfield(['name' => '_source', 'id' => 'postwarden-source', 'class' => 'form-control']);
        $user = new html_inputfield(['name' => '_source_user', 'id' => 'postwarden-source-user', 'class' => 'form-control']);
        $pass = new html_passwordfield(['name' => '_source_password', 'id' => 'postwarden-source-password',
                                        'class' => 'form-control', 'autocomplete' => 'off']);
        $fields = html::p(null, rcube::Q($this->gettext('migrationexplain')))
            . html::label('postwarden-preset', rcube::Q($this->gettext('source'))) . $preset->show()
            . html::label('postwarden-source', rcube::Q($this->gettext('server'))) . $src->show()
            . html::label('postwarden-source-user', rcube::Q($this->gettext('sourceuser'))) . $user->show()
            . html::label('postwarden-source-password', rcube::Q($this->gettext('sourcepassword'))) . $pass->show();
        return $this->section('migration', 'migration',
            ($list ? html::tag('ul', ['class' => 'postwarden-jobs', 'aria-live' => 'polite'], $list) : '')
            . $this->form('migration-start', $this->gettext('startmigration'), $fields));
    }
}
