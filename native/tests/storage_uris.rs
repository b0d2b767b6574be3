//! Cloud and WebDAV URIs with CockroachDB's parameters: what `NativeOpener` accepts, the errors
//! that name a wrong, missing or unknown parameter, and that no secret reaches an error or a
//! description. These need no server: cloud URIs are checked when opened, without a request.
//! (GCS has no server in the tests, see `storage_servers.rs`; its URIs are covered here.)

use base64::Engine as _;
use strata_core::ExternalStorageExt;
use strata_core::{Error, StorageOpener};
use strata_native::NativeOpener;

const SECRET: &str = "hunter2-S3cr3t/+=";
/// [`SECRET`] percent-encoded, as it must be in user info.
const SECRET_ENCODED: &str = "hunter2-S3cr3t%2F%2B%3D";

fn opener() -> NativeOpener {
    NativeOpener::new(std::env::temp_dir().join("strata-storage-uris"))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A service account key in the shape object_store reads; `gcs_base_url` and `disable_oauth`
/// point it at an emulator without a token exchange.
fn gcs_key() -> String {
    format!(
        r#"{{"gcs_base_url":"http://127.0.0.1:9","disable_oauth":true,"client_email":"strata@example.iam","private_key":"{SECRET}","private_key_id":"k1"}}"#
    )
}

fn open_err(uri: &str) -> Error {
    match opener().open(uri) {
        Ok(s) => panic!("open({uri:?}) should fail, opened {}", s.describe()),
        Err(e) => e,
    }
}

#[track_caller]
fn expect_invalid(uri: &str, expected: &str) {
    let err = open_err(uri);
    match &err {
        Error::InvalidArgument { what, message } => {
            assert_eq!(what, "storage URI", "{uri}");
            assert!(message.ends_with(expected), "open({uri:?}):\n  got      {message}\n  expected …{expected}");
        }
        other => panic!("open({uri:?}): expected an invalid storage URI error, got {other:?}"),
    }
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "open({uri:?}) leaked a secret: {shown}");
    }
}

#[test]
fn s3_uris() {
    let good = [
        format!("s3://bucket/path?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY={SECRET}"),
        format!("s3://bucket?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY={SECRET}&AWS_SESSION_TOKEN=tok&AWS_REGION=eu-west-1"),
        format!("s3://bucket/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY={SECRET}&AWS_ENDPOINT=http%3A%2F%2F127.0.0.1%3A9000&AWS_USE_PATH_STYLE=true&COCKROACH_LOCALITY=region%3Dus-west"),
        "s3://bucket/p?AUTH=implicit&AWS_REGION=us-west-2".to_string(),
        format!("S3://bucket/p?auth=SPECIFIED&aws_access_key_id=AKIA&aws_secret_access_key={SECRET}"),
    ];
    for uri in &good {
        let s = opener().open(uri).unwrap_or_else(|e| panic!("open {uri}: {e}"));
        assert!(!s.describe().contains("hunter2"), "{}", s.describe());
    }
    let s = opener().open(&good[0]).unwrap();
    assert_eq!(s.describe(), "s3://bucket/path?AWS_ACCESS_KEY_ID=redacted&AWS_SECRET_ACCESS_KEY=redacted");

    expect_invalid(
        "s3://bucket/p?AWS_ACCESS_KEY_ID=AKIA",
        "missing parameter AWS_SECRET_ACCESS_KEY (AUTH=specified, the default, takes the credentials from the URI; \
         AUTH=implicit takes them from the environment)",
    );
    expect_invalid(&format!("s3://bucket/p?AWS_SECRET_ACCESS_KEY={SECRET}"), "missing parameter AWS_ACCESS_KEY_ID (AUTH=specified, the default, takes the credentials from the URI; AUTH=implicit takes them from the environment)");
    expect_invalid("s3://bucket/p", "missing parameter AWS_ACCESS_KEY_ID (AUTH=specified, the default, takes the credentials from the URI; AUTH=implicit takes them from the environment)");
    expect_invalid(
        &format!("s3://bucket/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY={SECRET}&AWS_SECRET_KEY=x"),
        "unknown parameter \"AWS_SECRET_KEY\" for s3 storage (it takes AUTH, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
         AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT, AWS_USE_PATH_STYLE, COCKROACH_LOCALITY)",
    );
    expect_invalid(
        &format!("s3://bucket/p?AUTH=implicit&AWS_SECRET_ACCESS_KEY={SECRET}"),
        "the parameter AWS_SECRET_ACCESS_KEY goes with AUTH=specified, not AUTH=implicit",
    );
    expect_invalid("s3://bucket/p?AUTH=magic", "the parameter AUTH is 'specified' or 'implicit'");
    expect_invalid(
        &format!("s3://bucket/p?AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY={SECRET}&AWS_ENDPOINT=localhost:9000"),
        "the parameter AWS_ENDPOINT is not an http(s):// URL",
    );
    expect_invalid(
        &format!("s3://bucket/p?AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY={SECRET}&AWS_USE_PATH_STYLE=yes"),
        "the parameter AWS_USE_PATH_STYLE is true or false",
    );
    expect_invalid(
        &format!("s3://ab/p?AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY={SECRET}"),
        "the bucket name \"ab\" is too short (at least 3 characters)",
    );
    expect_invalid(
        &format!("s3:///p?AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY={SECRET}"),
        "s3 URIs name a bucket: s3://bucket/path",
    );
    expect_invalid(
        &format!("s3://bucket/p?AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY={SECRET}&AWS_ACCESS_KEY_ID=B"),
        "the parameter AWS_ACCESS_KEY_ID is given twice",
    );
    expect_invalid(&format!("s3://user:{SECRET_ENCODED}@bucket/p"), "s3 URIs take no user or password");
    // Unencoded, the '/' ends the authority: the URI is malformed, and the password still hidden.
    let err = open_err(&format!("s3://user:{SECRET}@bucket/p"));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    expect_invalid("s3://bucket:9000/p?AUTH=implicit", "s3 URIs take no port");
}

#[test]
fn gs_uris() {
    let key = b64(&gcs_key());
    let good = [
        format!("gs://bucket/path?CREDENTIALS={key}"),
        format!("gs://bucket/path?AUTH=specified&CREDENTIALS={}", key.trim_end_matches('=')),
        format!("gs://bucket/path?CREDENTIALS={}", base64::engine::general_purpose::URL_SAFE.encode(gcs_key())),
        format!("gs://bucket/path?BEARER_TOKEN={SECRET}&COCKROACH_LOCALITY=default"),
    ];
    for uri in &good {
        let s = opener().open(uri).unwrap_or_else(|e| panic!("open {uri}: {e}"));
        assert!(!s.describe().contains(&key) && !s.describe().contains("hunter2"), "{}", s.describe());
    }
    assert_eq!(opener().open(&good[0]).unwrap().describe(), "gs://bucket/path?CREDENTIALS=redacted");

    expect_invalid(
        "gs://bucket/path",
        "missing parameter CREDENTIALS (AUTH=specified, the default, takes a base64-encoded service account key \
         from the URI; AUTH=implicit uses the environment's credentials)",
    );
    expect_invalid(
        "gs://bucket/path?CREDENTIALS=hunter2!!",
        "the parameter CREDENTIALS is not base64 (encode the JSON key file with base64)",
    );
    let not_json = b64(&format!("not json {SECRET}"));
    let err = open_err(&format!("gs://bucket/path?CREDENTIALS={not_json}"));
    assert!(err.to_string().contains("the parameter CREDENTIALS is not a JSON service account key"), "{err}");
    assert!(!err.to_string().contains("hunter2") && !err.to_string().contains(&not_json), "{err}");
    expect_invalid(
        &format!("gs://bucket/path?AUTH=implicit&CREDENTIALS={key}"),
        "the parameter CREDENTIALS goes with AUTH=specified, not AUTH=implicit",
    );
    expect_invalid(
        &format!("gs://bucket/path?BEARER_TOKEN=tok3n&CREDENTIALS={key}"),
        "the parameter CREDENTIALS cannot be combined with BEARER_TOKEN",
    );
    expect_invalid(
        "gs://bucket/path?AUTH=implicit&AWS_REGION=x",
        "unknown parameter \"AWS_REGION\" for gs storage (it takes AUTH, CREDENTIALS, BEARER_TOKEN, COCKROACH_LOCALITY)",
    );
}

#[test]
fn azure_uris() {
    let good = [
        format!("azure://container/path?AZURE_ACCOUNT_NAME=acct&AZURE_ACCOUNT_KEY={}", b64(SECRET)),
        format!("azure-blob://container?AZURE_ACCOUNT_NAME=acct&AZURE_ACCOUNT_KEY={}&AZURE_BLOB_ENDPOINT=http%3A%2F%2F127.0.0.1%3A10000%2Facct", b64(SECRET)),
        format!("azure://container/p?AZURE_ACCOUNT_NAME=acct&AZURE_CLIENT_ID=id&AZURE_CLIENT_SECRET={SECRET}&AZURE_TENANT_ID=t"),
        "azure://container/p?AUTH=implicit&AZURE_ACCOUNT_NAME=acct".to_string(),
    ];
    for uri in &good {
        let s = opener().open(uri).unwrap_or_else(|e| panic!("open {uri}: {e}"));
        assert!(!s.describe().contains("hunter2") && !s.describe().contains(&b64(SECRET)), "{}", s.describe());
    }
    expect_invalid(
        "azure://container/p?AZURE_ACCOUNT_KEY=k",
        "missing parameter AZURE_ACCOUNT_NAME (it names the storage account holding the container)",
    );
    expect_invalid(
        "azure://container/p?AZURE_ACCOUNT_NAME=acct",
        "missing parameter AZURE_ACCOUNT_KEY (AUTH=specified, the default, takes the account key (or a service \
         principal) from the URI; AUTH=implicit uses the environment's credentials)",
    );
    expect_invalid(
        &format!("azure://container/p?AZURE_ACCOUNT_NAME=acct&AZURE_CLIENT_ID=id&AZURE_CLIENT_SECRET={SECRET}"),
        "missing parameter AZURE_TENANT_ID (a service principal needs AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID)",
    );
    expect_invalid(
        &format!("azure://container/p?AZURE_ACCOUNT_NAME=acct&AZURE_ACCOUNT_KEY={SECRET}&AZURE_ENDPOINT=http://x"),
        "unknown parameter \"AZURE_ENDPOINT\" for azure storage (it takes AUTH, AZURE_ACCOUNT_NAME, AZURE_ACCOUNT_KEY, \
         AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID, AZURE_BLOB_ENDPOINT, COCKROACH_LOCALITY)",
    );
    expect_invalid(
        &format!(
            "azure://container/p?AZURE_ACCOUNT_NAME=acct&AZURE_ACCOUNT_KEY={SECRET}&AZURE_BLOB_ENDPOINT=ftp%3A%2F%2Fx"
        ),
        "the parameter AZURE_BLOB_ENDPOINT is not an http(s):// URL",
    );
    expect_invalid(
        &format!("azure://c/p?AZURE_ACCOUNT_NAME=a&AZURE_ACCOUNT_KEY={SECRET}"),
        "the container name \"c\" is too short (at least 3 characters)",
    );
}

#[test]
fn http_uris() {
    for uri in [
        "http://127.0.0.1:8080/backups".to_string(),
        format!("https://user:{SECRET_ENCODED}@dav.example.com/dir/sub?COCKROACH_LOCALITY=default"),
        "http://[::1]:9/x".to_string(),
    ] {
        let s = opener().open(&uri).unwrap_or_else(|e| panic!("open {uri}: {e}"));
        assert!(!s.describe().contains("hunter2"), "{}", s.describe());
    }
    assert_eq!(
        opener().open(&format!("https://user:{SECRET_ENCODED}@dav.example.com/dir")).unwrap().describe(),
        "https://user:redacted@dav.example.com/dir"
    );
    expect_invalid(
        "http://host/p?AWS_REGION=x",
        "unknown parameter \"AWS_REGION\" for http storage (it takes COCKROACH_LOCALITY)",
    );
    expect_invalid("http:///p", "http URIs name a server: http://host[:port]/path");
    expect_invalid(
        &format!("https://u:{SECRET_ENCODED}@host:99999/p"),
        "the port \"99999\" is not a number from 0 to 65535",
    );
    let err = open_err(&format!("https://u:{SECRET}@host/p"));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// A server that is not there: the request is retried as configured (connection refused is
/// transient), then fails with a temporary storage error naming the path and no secret.
#[tokio::test]
async fn unreachable_servers_fail_after_retries_with_a_temporary_error() {
    let retry = object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(10),
            max_backoff: std::time::Duration::from_millis(20),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: std::time::Duration::from_secs(5),
    };
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let opener = opener().with_retry(retry);
    for uri in [
        format!("s3://bucket/dir?AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY={SECRET}&AWS_ENDPOINT=http://127.0.0.1:{port}"),
        format!("azure://container/dir?AZURE_ACCOUNT_NAME=acct&AZURE_ACCOUNT_KEY={}&AZURE_BLOB_ENDPOINT=http://127.0.0.1:{port}/acct", b64(SECRET)),
        format!("http://user:{SECRET_ENCODED}@127.0.0.1:{port}/dir"),
    ] {
        let storage = opener.open(&uri).unwrap();
        for result in [
            storage.put("data/1.sst", bytes::Bytes::from_static(b"x")).await.map(drop),
            storage.get("data/1.sst").await.map(drop),
        ] {
            match result {
                Err(e @ Error::Storage { .. }) => {
                    assert_eq!(e.status(), strata_core::Status::Temporary, "{uri}: {e}");
                    let shown = e.to_string();
                    assert!(shown.contains("/dir/data/1.sst"), "{uri}: the error names the path: {shown}");
                    assert!(!shown.contains("hunter2") && !shown.contains(&b64(SECRET)), "{uri}: {shown}");
                }
                other => panic!("{uri}: expected a storage error, got {other:?}"),
            }
        }
    }
}

/// Issue 13 §2: whatever the spelling of a parameter (misspelled, unknown, with a space, `;` as
/// the separator, encoded), no error and no description shows a value that may be a secret.
#[test]
fn no_error_shows_a_query_value_whatever_its_spelling() {
    const S: &str = "Zq9SECRETvalue";
    let spellings = [
        "AWS_SECRET_KEY={s}",
        "AWS_SECRET_ACCESS_KEY={s}",
        "AWS_SESION_TOKEN={s}",
        "AWS_SESSION_TOKEN={s}",
        "AWS_SECRET_ACCESS_KEY%20={s}",
        "AWS_SECRET_ACCESS_KEY =%20{s}",
        "AWS_ACCESS_KEY_ID=AKIA;AWS_SECRET_ACCESS_KEY={s}",
        "AWS_SECRET_ACCESS_KEY%3D{s}",
        "AZURE_ACCOUNT_SECRET={s}",
        "AZURE_ACCOUNT_KEY={s}",
        "CREDENTIAL={s}",
        "CREDENTIALS={s}",
        "AUTH={s}",
        "AWS_USE_PATH_STYLE={s}",
        "AWS_ENDPOINT={s}",
        "AWS_REGION={s}",
        "{s}",
    ];
    let mut errors = 0;
    for scheme in ["s3://bucket/p", "azure://container/p", "gs://bucket/p", "nodelocal://1/p", "https://dav.example/p"]
    {
        for spelling in spellings {
            let query = spelling.replace("{s}", S);
            for uri in [format!("{scheme}?{query}"), format!("{scheme}?AUTH=specified&{query}")] {
                match opener().open(&uri) {
                    Ok(storage) => {
                        let shown = storage.describe();
                        assert!(!shown.contains(S), "{uri} => {shown}");
                    }
                    Err(e) => {
                        errors += 1;
                        let shown = format!("{e} {e:?}");
                        assert!(!shown.contains(S) && !shown.contains("SECRETvalue"), "{uri} => {shown}");
                    }
                }
            }
        }
    }
    assert!(errors > 100, "only {errors} URIs were refused");
    for userinfo in ["user:{s}", "{s}", "user:{s}/x"] {
        let uri = format!("https://{}@dav.example/p?BAD=1", userinfo.replace("{s}", S));
        let e = open_err(&uri);
        assert!(!format!("{e} {e:?}").contains(S), "{uri} => {e}");
        let uri = format!("s3://{}@bucket/p", userinfo.replace("{s}", S));
        let e = open_err(&uri);
        assert!(!format!("{e} {e:?}").contains(S), "{uri} => {e}");
    }
}

/// Issue 17 §8: one behaviour on `%`-escapes that do not decode to UTF-8 text: an error naming
/// the parameter (or path segment), never its value.
#[test]
fn escapes_that_are_not_utf8_are_refused_naming_the_parameter() {
    expect_invalid(
        "s3://bucket/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=hunter2%ff",
        "the value of AWS_SECRET_ACCESS_KEY does not decode to UTF-8 text",
    );
    expect_invalid("s3://bucket/p?A%ffhunter2=1", "a parameter name does not decode to UTF-8 text");
    expect_invalid("nodelocal://1/dir%ff", "the path segment \"dir%ff\" does not decode to UTF-8 text");
}
