package database

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// URLInfo is what ParseURL makes of a Config.URL.
type URLInfo struct {
	// Dialect is Postgres or SQLite.
	Dialect string
	// Redacted is the URL to print: for PostgreSQL, the password and every
	// value not known to be public replaced by "xxxxx" (a URL without a
	// password prints none); a key/value string stays one.
	Redacted string
	// SQLitePath is the SQLite file, or ":memory:"; empty for PostgreSQL.
	SQLitePath string
}

// ParseURL parses a Config.URL as Open does, without opening anything. It
// accepts:
//
//   - PostgreSQL URLs, postgres:// or postgresql:// in any case, with one host
//     or several ("db1:5432,db2:5432"), and libpq's parameters in the query;
//   - libpq's key/value strings ("host=db user=app password='a b' dbname=chat"),
//     quoted as libpq quotes: single quotes around a value with spaces, and a
//     backslash before a quote or backslash in it;
//   - SQLite: "sqlite://PATH", "sqlite:PATH", "file:PATH" or a bare path.
//
// A string meant for PostgreSQL but mistyped is refused, not taken for an SQLite
// file to create: one that starts with "postgres:" or "postgresql:" in any case
// without "//" after it, or "postgres//"; and an SQLite path with a ':' before
// an '@', the shape of user:password@host (an SQLite file whose name holds both
// must be opened from a path without them).
//
// Errors are *ConfigError, saying what is wrong ("missing // after postgres:",
// `bad port "x"`) without ever quoting a secret or the URL: a port is quoted
// only when it cannot be part of a password.
func ParseURL(raw string) (URLInfo, error) {
	t, err := parseURL(raw)
	if err != nil {
		return URLInfo{}, err
	}
	return URLInfo{Dialect: t.dialect, Redacted: t.redacted, SQLitePath: t.sqlitePath}, nil
}

// OtherDatabase returns raw, a PostgreSQL URL or libpq key/value string, as a
// postgres:// URL of database dbname on the same server (or servers), with the
// same user, password and settings: for a tool that works beside the database
// raw names, such as chatdb's temporary dev databases, which are made from the
// server's postgres database. Errors are ParseURL's, and a *ConfigError for an
// SQLite URL; none quotes raw.
func OtherDatabase(raw, dbname string) (string, error) {
	t, err := parseURL(raw)
	if err != nil {
		return "", err
	}
	if t.dialect != Postgres {
		return "", configErr("not a PostgreSQL URL")
	}
	u := *t.pgURL
	q := u.Query()
	// A key/value string's dbname is a query parameter of its URL form, which
	// would win over the path.
	q.Del("dbname")
	u.RawQuery = q.Encode()
	u.Path, u.RawPath = "/"+dbname, ""
	return u.String(), nil
}

// IsPostgresURL reports whether raw is written as a PostgreSQL URL: it starts
// with postgres:// or postgresql://, in any case. It says nothing of the rest,
// which ParseURL checks; a key/value string is PostgreSQL too, but not a URL
// whose host or database a tool could rewrite.
func IsPostgresURL(raw string) bool {
	_, ok := cutPostgresScheme(raw)
	return ok
}

// cutPostgresScheme returns raw after its "postgres://" or "postgresql://".
func cutPostgresScheme(raw string) (rest string, ok bool) {
	for _, s := range []string{"postgresql://", "postgres://"} {
		if len(raw) >= len(s) && strings.EqualFold(raw[:len(s)], s) {
			return raw[len(s):], true
		}
	}
	return "", false
}

// Redact returns u for printing, as ParseURL's URLInfo.Redacted. A URL that
// does not parse is replaced entirely, since the parser cannot say where the
// password is.
func Redact(u string) string {
	t, err := parseURL(u)
	if err != nil {
		return "(malformed URL)"
	}
	return t.redacted
}

// target is a parsed Config.URL.
type target struct {
	dialect string
	// pgURL is the PostgreSQL URL, with the password; never print it. A
	// key/value string is turned into one, its pairs in the query.
	pgURL *url.URL
	// sqlitePath is the SQLite file path, or ":memory:".
	sqlitePath string
	// redacted is the URL to print.
	redacted string
}

func configErr(format string, args ...any) error {
	return &ConfigError{Reason: fmt.Sprintf(format, args...)}
}

// parseURL parses a Config.URL without ever putting the URL in an error: net/url's
// errors quote the whole input, password included.
func parseURL(raw string) (target, error) {
	if rest, ok := cutPostgresScheme(raw); ok {
		return parsePostgresURL(raw, rest)
	}
	lower := strings.ToLower(raw)
	for _, s := range []string{"postgresql", "postgres"} {
		switch {
		case strings.HasPrefix(lower, s+":"):
			return target{}, configErr("missing // after %s: (write %s://user:password@host/database)", s, s)
		case strings.HasPrefix(lower, s+"//"):
			return target{}, configErr("missing : after %s (write %s://user:password@host/database)", s, s)
		}
	}
	switch {
	case raw == "":
		return sqliteTarget(DefaultSQLitePath)
	case strings.HasPrefix(lower, "sqlite://"):
		return sqliteTarget(raw[len("sqlite://"):])
	case strings.HasPrefix(lower, "sqlite:"):
		return sqliteTarget(raw[len("sqlite:"):])
	case strings.HasPrefix(lower, "file:"):
		return sqliteTarget(raw[len("file:"):])
	case strings.Contains(raw, "://"):
		return target{}, configErr("unsupported URL scheme (use postgres://, sqlite:// or a file path)")
	case keywordDSN(raw):
		return parseKeywordDSN(raw)
	default:
		return sqliteTarget(raw)
	}
}

// parsePostgresURL checks what net/url would refuse, or accept and misread,
// to say what is wrong; rest is raw after its scheme.
func parsePostgresURL(raw, rest string) (target, error) {
	if strings.IndexFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return target{}, configErr("control character in the PostgreSQL URL")
	}
	authority, after := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, after = rest[:i], rest[i:]
	}
	at := strings.LastIndexByte(authority, '@')
	hostport := authority[at+1:]
	// With no '@' before the first '/', '?' or '#', an '@' further on means a
	// user name or password holding one of them: what precedes it is not a
	// host and port, and would be printed as such.
	if at < 0 && strings.Contains(after, "@") {
		return target{}, configErr("'@' after the host: percent-encode '/', '?', '#' and '@' in the user name and password (%%2F, %%3F, %%23, %%40)")
	}
	if at >= 0 {
		if _, err := url.PathUnescape(authority[:at]); err != nil {
			return target{}, configErr("malformed percent-escape in the user name or password (%% must be followed by two hex digits)")
		}
	}
	for _, h := range strings.Split(hostport, ",") {
		port := ""
		if strings.HasPrefix(h, "[") {
			end := strings.IndexByte(h, ']')
			if end < 0 {
				return target{}, configErr("missing ] after an IPv6 address")
			}
			if tail := h[end+1:]; tail != "" {
				if tail[0] != ':' {
					return target{}, configErr("unexpected text after an IPv6 address (write [address]:port)")
				}
				port = tail[1:]
			}
		} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
			port = h[i+1:]
		}
		if err := checkPort(port); err != nil {
			return target{}, err
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, configErr("malformed PostgreSQL URL (check the percent-escapes in the host and database name)")
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return target{}, configErr("malformed query string in the PostgreSQL URL (check its percent-escapes)")
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return target{}, configErr("the PostgreSQL URL has no host")
	}
	// The scheme is lower-cased by net/url; the drivers want it so.
	return target{dialect: Postgres, pgURL: u, redacted: redactURL(u)}, nil
}

// checkPort checks a port, or a comma-separated list of them (libpq's
// key/value form); empty means the default. A port is quoted in the error: it
// comes after the user information, and cannot hold a password.
func checkPort(ports string) error {
	for _, p := range strings.Split(ports, ",") {
		if p == "" {
			continue
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strings.TrimLeft(p, "0123456789") != "" {
			return configErr("bad port %.20q (want a number from 1 to 65535)", p)
		}
	}
	return nil
}

// libpqKeywords are the keywords of libpq's key/value strings (libpq's
// documentation, 34.1.2), plus the drivers' own that publicParams lists.
var libpqKeywords = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true, "password": true,
	"passfile": true, "require_auth": true, "channel_binding": true, "connect_timeout": true,
	"client_encoding": true, "options": true, "application_name": true, "fallback_application_name": true,
	"keepalives": true, "keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
	"tcp_user_timeout": true, "replication": true, "gssencmode": true, "sslmode": true, "requiressl": true,
	"sslcompression": true, "sslcert": true, "sslkey": true, "sslpassword": true, "sslcertmode": true,
	"sslrootcert": true, "sslcrl": true, "sslcrldir": true, "sslsni": true, "requirepeer": true,
	"ssl_min_protocol_version": true, "ssl_max_protocol_version": true, "krbsrvname": true,
	"gsslib": true, "gssdelegation": true, "service": true, "target_session_attrs": true,
	"load_balance_hosts": true, "sslnegotiation": true,
}

func isKeyword(k string) bool { return libpqKeywords[k] || publicParams[k] }

// keywordDSN reports whether s looks like a libpq key/value string ("host=db
// user=app password=..."): a libpq keyword followed by '=', spaces allowed
// around it, as libpq allows.
func keywordDSN(s string) bool {
	fields := strings.Fields(s)
	for i, f := range fields {
		k, _, hasEq := strings.Cut(f, "=")
		if !isKeyword(strings.ToLower(k)) {
			continue
		}
		if hasEq || (i+1 < len(fields) && strings.HasPrefix(fields[i+1], "=")) {
			return true
		}
	}
	return false
}

// dsnPair is one keyword and its value in a key/value string.
type dsnPair struct{ key, value string }

// parseKeywordDSN parses a libpq key/value string as libpq does, and turns it
// into a URL whose query holds every pair, which both drivers read as libpq
// would read the string.
func parseKeywordDSN(s string) (target, error) {
	pairs, err := splitKeywordDSN(s)
	if err != nil {
		return target{}, err
	}
	q := url.Values{}
	for _, p := range pairs {
		switch {
		case !isKeyword(p.key):
			// Not quoted: it may be the end of a password with a space.
			return target{}, configErr("unknown keyword in the connection string (libpq's are host, port, dbname, user, password, sslmode, ...; quote a value with spaces: password='a b')")
		case p.key == "port":
			if err := checkPort(p.value); err != nil {
				return target{}, err
			}
		}
		q.Set(p.key, p.value) // the last one wins, as in libpq
	}
	if q.Get("host") == "" && q.Get("hostaddr") == "" {
		return target{}, configErr("the connection string has no host")
	}
	u := &url.URL{Scheme: "postgres", Path: "/", RawQuery: q.Encode()}
	return target{dialect: Postgres, pgURL: u, redacted: redactDSN(pairs)}, nil
}

// splitKeywordDSN splits a key/value string into its pairs. Its errors name a
// keyword only when it is one of libpq's: an unknown word may be part of a
// password.
func splitKeywordDSN(s string) ([]dsnPair, error) {
	var pairs []dsnPair
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	i := 0
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	named := func(k string) string {
		if isKeyword(k) {
			return fmt.Sprintf("%q", k)
		}
		return "a word"
	}
	for {
		skip()
		if i == len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := strings.ToLower(s[start:i])
		if key == "" {
			return nil, configErr(`"=" without a keyword in the connection string`)
		}
		skip()
		if i == len(s) || s[i] != '=' {
			return nil, configErr(`missing "=" after %s in the connection string`, named(key))
		}
		i++
		skip()
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) && !closed {
				switch {
				case s[i] == '\\' && i+1 < len(s):
					v.WriteByte(s[i+1])
					i += 2
				case s[i] == '\'':
					closed = true
					i++
				default:
					v.WriteByte(s[i])
					i++
				}
			}
			if !closed {
				return nil, configErr("unterminated quoted value after %s in the connection string", named(key))
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
		}
		pairs = append(pairs, dsnPair{key, v.String()})
	}
}

// redactDSN prints a key/value string's pairs as a key/value string, with
// the values redactURL would hide hidden.
func redactDSN(pairs []dsnPair) string {
	inline := false
	for _, p := range pairs {
		if p.key == "sslinline" {
			inline = isTrue(p.value)
		}
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		v := p.value
		if hidden(p.key, inline) {
			v = "xxxxx"
		} else if v == "" || strings.ContainsAny(v, " \t\n\r\f\v'\\") {
			v = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
		}
		out[i] = p.key + "=" + v
	}
	return strings.Join(out, " ")
}

func isTrue(s string) bool { return strings.EqualFold(s, "true") || s == "1" }

// hidden reports whether the value of parameter k is printed as "xxxxx": it is
// not known to be public. With sslinline, lib/pq takes sslkey to be the
// private key itself.
func hidden(k string, inline bool) bool {
	return !publicParams[k] || (inline && k == "sslkey")
}

// sqliteTarget checks an SQLite path.
func sqliteTarget(p string) (target, error) {
	// Options come from Config, not from the path; a query string would be
	// silently ignored, so refuse it.
	if strings.ContainsAny(p, "?#") {
		return target{}, configErr("SQLite path must not carry options; use Config fields")
	}
	if p == "" {
		return target{}, configErr("SQLite URL has no path")
	}
	if at := strings.IndexByte(p, '@'); at >= 0 && strings.Contains(p[:at], ":") {
		// Taken for a path, user:password@host would become a file named
		// after the password, and be printed.
		return target{}, configErr("looks like user:password@host without a scheme: write postgres://user:password@host/database (an SQLite path may not hold ':' before '@')")
	}
	return target{dialect: SQLite, sqlitePath: p, redacted: "sqlite://" + p}, nil
}

// secretParams are the URL query parameters that hold secrets: the password,
// and the passphrase of the client's TLS key.
var secretParams = []string{"password", "sslpassword"}

// publicParams are the URL query parameters whose values redactURL prints: the
// common libpq, pgx and lib/pq ones, none of which holds a secret. Any other
// value is printed as "xxxxx", so that a password put in a misspelt parameter
// ("pasword=") is not printed either.
var publicParams = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true,
	"sslmode": true, "sslrootcert": true, "sslcert": true, "sslkey": true, "sslcrl": true,
	"sslsni": true, "sslnegotiation": true, "sslinline": true, "sslcertmode": true,
	"ssl_min_protocol_version": true, "ssl_max_protocol_version": true,
	"gssencmode": true, "channel_binding": true, "krbsrvname": true, "krbspn": true,
	"connect_timeout": true, "application_name": true, "fallback_application_name": true,
	"target_session_attrs": true, "load_balance_hosts": true,
	"min_protocol_version": true, "max_protocol_version": true,
	"binary_parameters": true, "disable_prepared_binary_result": true,
	"search_path": true, "timezone": true, "client_encoding": true, "datestyle": true,
	"statement_timeout": true, "lock_timeout": true, "idle_in_transaction_session_timeout": true,
	"default_query_exec_mode": true, "statement_cache_capacity": true, "description_cache_capacity": true,
}

// redactURL prints u without its secrets: the password in the user information
// (a URL without one prints none, an empty one included), and the value of
// every query parameter not known to be public.
func redactURL(u *url.URL) string {
	c := *u
	if p, has := u.User.Password(); has && p == "" {
		c.User = url.User(u.User.Username())
	}
	q := c.Query()
	inline := isTrue(q.Get("sslinline"))
	changed := false
	for k, vs := range q {
		if !hidden(k, inline) {
			continue
		}
		for i := range vs {
			vs[i] = "xxxxx"
		}
		changed = true
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return c.Redacted()
}

// urlSecrets returns the secrets in u, to scrub from driver errors.
func urlSecrets(u *url.URL) []string {
	var s []string
	if p, ok := u.User.Password(); ok && p != "" {
		s = append(s, p)
	}
	q := u.Query()
	for _, p := range secretParams {
		if v := q.Get(p); v != "" {
			s = append(s, v)
		}
	}
	return s
}
