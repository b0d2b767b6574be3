//! `s3://`, `gs://` and `azure://` URIs, with CockroachDB's parameters, to object_store clients.

use std::sync::Arc;

use base64::Engine as _;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use strata_core::Result;

use super::uri::{Auth, StorageUri};

/// The parameters of `s3://bucket/path?…`.
pub(crate) const S3_PARAMS: &[&str] = &[
    "AUTH",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT",
    "AWS_USE_PATH_STYLE",
];

/// The parameters of `gs://bucket/path?…`.
pub(crate) const GS_PARAMS: &[&str] = &["AUTH", "CREDENTIALS", "BEARER_TOKEN"];

/// The parameters of `azure://container/path?…` (`AZURE_BLOB_ENDPOINT` is strata's, for
/// emulators and private endpoints).
pub(crate) const AZURE_PARAMS: &[&str] = &[
    "AUTH",
    "AZURE_ACCOUNT_NAME",
    "AZURE_ACCOUNT_KEY",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_BLOB_ENDPOINT",
];

/// How every cloud client talks to its server.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub(crate) retry: RetryConfig,
    pub(crate) options: ClientOptions,
}

impl ClientSettings {
    /// The client options, allowing plain `http://` only when the endpoint is one.
    fn options_for(&self, endpoint: Option<&str>) -> ClientOptions {
        let http = endpoint.is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"));
        self.options.clone().with_allow_http(http)
    }
}

/// The bucket or container: the URI's host, at least 3 characters.
fn bucket<'a>(uri: &StorageUri<'a>, what: &str) -> Result<&'a str> {
    if uri.host.is_empty() {
        return Err(uri.invalid(&format!("{} URIs name a {what}: {}://{what}/path", uri.scheme, uri.scheme)));
    }
    if uri.host.len() < 3 {
        return Err(uri.invalid(&format!("the {what} name {:?} is too short (at least 3 characters)", uri.host)));
    }
    Ok(uri.host)
}

/// `s3://bucket/path?AWS_ACCESS_KEY_ID=…&AWS_SECRET_ACCESS_KEY=…[&AWS_SESSION_TOKEN=…]
/// [&AWS_REGION=…][&AWS_ENDPOINT=…][&AWS_USE_PATH_STYLE=true|false][&AUTH=specified|implicit]`.
pub(crate) fn s3(uri: &StorageUri<'_>, settings: &ClientSettings) -> Result<Arc<dyn ObjectStore>> {
    uri.check_params(S3_PARAMS)?;
    let bucket = bucket(uri, "bucket")?;
    let mut builder = match uri.auth()? {
        Auth::Specified => {
            let why = "AUTH=specified, the default, takes the credentials from the URI; AUTH=implicit takes them from the environment";
            let key_id = uri.require("AWS_ACCESS_KEY_ID", why)?;
            let secret = uri.require("AWS_SECRET_ACCESS_KEY", why)?;
            let mut b = AmazonS3Builder::new().with_access_key_id(key_id).with_secret_access_key(secret);
            if let Some(token) = uri.param("AWS_SESSION_TOKEN") {
                b = b.with_token(token);
            }
            b
        }
        Auth::Implicit => {
            for p in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
                uri.forbid(p, "goes with AUTH=specified, not AUTH=implicit")?;
            }
            // Environment variables, web identity, container or instance credentials.
            AmazonS3Builder::from_env()
        }
    };
    let endpoint = uri.param("AWS_ENDPOINT");
    if let Some(e) = endpoint {
        check_endpoint(uri, "AWS_ENDPOINT", e)?;
        builder = builder.with_endpoint(e.trim_end_matches('/'));
    }
    // A custom endpoint (an S3-compatible server) is addressed path-style by default, AWS
    // itself virtual-hosted-style.
    let path_style = uri.bool_param("AWS_USE_PATH_STYLE")?.unwrap_or(endpoint.is_some());
    let region = uri.param("AWS_REGION").unwrap_or("us-east-1");
    let store = builder
        .with_bucket_name(bucket)
        .with_region(region)
        .with_virtual_hosted_style_request(!path_style)
        .with_client_options(settings.options_for(endpoint))
        .with_retry(settings.retry.clone())
        .build()
        .map_err(|e| uri.invalid(&format!("cannot configure the S3 client: {e}")))?;
    Ok(Arc::new(store))
}

/// `gs://bucket/path?AUTH=specified&CREDENTIALS=<base64 service account JSON>`,
/// `gs://bucket/path?BEARER_TOKEN=…` or `gs://bucket/path?AUTH=implicit`.
pub(crate) fn gs(uri: &StorageUri<'_>, settings: &ClientSettings) -> Result<Arc<dyn ObjectStore>> {
    uri.check_params(GS_PARAMS)?;
    let bucket = bucket(uri, "bucket")?;
    let mut endpoint = None;
    let builder = match (uri.auth()?, uri.param("BEARER_TOKEN")) {
        (Auth::Specified, Some(token)) => {
            uri.forbid("CREDENTIALS", "cannot be combined with BEARER_TOKEN")?;
            GoogleCloudStorageBuilder::new().with_bearer_token(token)
        }
        (Auth::Specified, None) => {
            let encoded = uri.require(
                "CREDENTIALS",
                "AUTH=specified, the default, takes a base64-encoded service account key from the URI; \
                 AUTH=implicit uses the environment's credentials",
            )?;
            let json = decode_credentials(uri, encoded)?;
            let parsed: serde_json::Value = serde_json::from_slice(&json).map_err(|e| {
                uri.invalid(&format!("the parameter CREDENTIALS is not a JSON service account key: {e}"))
            })?;
            // object_store's emulator support: a key may name its own endpoint.
            endpoint = parsed.get("gcs_base_url").and_then(|v| v.as_str()).map(str::to_string);
            let json = String::from_utf8(json)
                .map_err(|_| uri.invalid("the parameter CREDENTIALS does not decode to UTF-8 JSON"))?;
            GoogleCloudStorageBuilder::new().with_service_account_key(json)
        }
        (Auth::Implicit, _) => {
            uri.forbid("CREDENTIALS", "goes with AUTH=specified, not AUTH=implicit")?;
            uri.forbid("BEARER_TOKEN", "goes with AUTH=specified, not AUTH=implicit")?;
            GoogleCloudStorageBuilder::from_env()
        }
    };
    let store = builder
        .with_bucket_name(bucket)
        .with_client_options(settings.options_for(endpoint.as_deref()))
        .with_retry(settings.retry.clone())
        .build()
        .map_err(|e| uri.invalid(&format!("cannot configure the GCS client: {e}")))?;
    Ok(Arc::new(store))
}

/// The service account key of `CREDENTIALS`: standard or URL-safe base64, padded or not.
fn decode_credentials(uri: &StorageUri<'_>, encoded: &str) -> Result<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let trimmed = encoded.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(trimmed).ok())
        .ok_or_else(|| uri.invalid("the parameter CREDENTIALS is not base64 (encode the JSON key file with base64)"))
}

/// `azure://container/path?AZURE_ACCOUNT_NAME=…&AZURE_ACCOUNT_KEY=…[&AZURE_BLOB_ENDPOINT=…]`,
/// or with `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` and `AZURE_TENANT_ID` instead of the key,
/// or `AUTH=implicit`.
pub(crate) fn azure(uri: &StorageUri<'_>, settings: &ClientSettings) -> Result<Arc<dyn ObjectStore>> {
    uri.check_params(AZURE_PARAMS)?;
    let container = bucket(uri, "container")?;
    let account = uri.require("AZURE_ACCOUNT_NAME", "it names the storage account holding the container")?;
    let client = ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"];
    let mut builder = match uri.auth()? {
        Auth::Specified if client.iter().any(|p| uri.param(p).is_some()) => {
            uri.forbid(
                "AZURE_ACCOUNT_KEY",
                "cannot be combined with AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID",
            )?;
            let why = "a service principal needs AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID";
            let id = uri.require("AZURE_CLIENT_ID", why)?;
            let secret = uri.require("AZURE_CLIENT_SECRET", why)?;
            let tenant = uri.require("AZURE_TENANT_ID", why)?;
            MicrosoftAzureBuilder::new().with_client_secret_authorization(id, secret, tenant)
        }
        Auth::Specified => {
            let key = uri.require(
                "AZURE_ACCOUNT_KEY",
                "AUTH=specified, the default, takes the account key (or a service principal) from the URI; \
                 AUTH=implicit uses the environment's credentials",
            )?;
            MicrosoftAzureBuilder::new().with_access_key(key)
        }
        Auth::Implicit => {
            for p in ["AZURE_ACCOUNT_KEY", "AZURE_CLIENT_SECRET"] {
                uri.forbid(p, "goes with AUTH=specified, not AUTH=implicit")?;
            }
            MicrosoftAzureBuilder::from_env()
        }
    };
    let endpoint = uri.param("AZURE_BLOB_ENDPOINT");
    if let Some(e) = endpoint {
        check_endpoint(uri, "AZURE_BLOB_ENDPOINT", e)?;
        builder = builder.with_endpoint(e.trim_end_matches('/').to_string());
    }
    let store = builder
        .with_account(account)
        .with_container_name(container)
        .with_client_options(settings.options_for(endpoint))
        .with_retry(settings.retry.clone())
        .build()
        .map_err(|e| uri.invalid(&format!("cannot configure the Azure client: {e}")))?;
    Ok(Arc::new(store))
}

/// An endpoint parameter is an `http(s)://host[:port][/path]` URL.
fn check_endpoint(uri: &StorageUri<'_>, name: &str, value: &str) -> Result<()> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(uri.invalid(&format!("the parameter {name} is not an http(s):// URL"))),
    }
}
