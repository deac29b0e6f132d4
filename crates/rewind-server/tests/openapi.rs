//! The OpenAPI document against the router it describes: the same paths,
//! the same methods on each, references that resolve, links that name real
//! operations; served at `/openapi.json` without a token; and the copy
//! committed in the repository is the one the code generates.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use rewind_server::{openapi_document, ApiConfig, Tokens};
use serde_json::Value;
use support::Server;

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "PATCH", "DELETE"];

/// The methods the document gives each path.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let document = openapi_document();
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.to_uppercase().as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test]
async fn the_document_lists_every_route_and_method_of_the_router() {
    let server = Server::with_acme().await;
    let mut routed = BTreeMap::new();
    for path in server.api.route_paths() {
        let concrete = path.replace("{t}", "acme_corp").replace("{name}", "v1");
        let mut methods = BTreeSet::new();
        for method in METHODS {
            // A method the route does not have is 405; anything else is routed.
            let status = server.status_of(method, &concrete, None, &[]).await;
            if status.as_u16() != 405 {
                methods.insert(method.to_owned());
            }
        }
        routed.insert(path.to_owned(), methods);
    }
    assert_eq!(documented(), routed);
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref" {
                    out.push(item.as_str().unwrap());
                } else {
                    refs(item, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_well_formed() {
    let document = openapi_document();
    assert_eq!(document["openapi"], "3.1.0");
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let pointer = reference.strip_prefix('#').unwrap();
        assert!(
            document.pointer(pointer).is_some(),
            "unresolved {reference}"
        );
    }

    let parameter = |value: &Value| -> Value {
        match value["$ref"].as_str() {
            Some(r) => document
                .pointer(r.strip_prefix('#').unwrap())
                .unwrap()
                .clone(),
            None => value.clone(),
        }
    };
    let mut operations = BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_owned();
            assert!(!op["summary"].as_str().unwrap().is_empty());
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{id}");
            let params: Vec<Value> = op["parameters"]
                .as_array()
                .map(|p| p.iter().map(parameter).collect())
                .unwrap_or_default();
            let declared: BTreeSet<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
            let names: Vec<String> = params
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let previous = operations.insert(id.clone(), names);
            assert!(previous.is_none(), "operationId {id} twice");
        }
    }
    // Links name real operations and their parameters.
    for item in document["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                let Some(links) = response.get("links") else {
                    continue;
                };
                for link in links.as_object().unwrap().values() {
                    let target = link["operationId"].as_str().unwrap();
                    let params = operations
                        .get(target)
                        .unwrap_or_else(|| panic!("link to unknown {target}"));
                    for name in link["parameters"].as_object().unwrap().keys() {
                        assert!(params.contains(name), "{target} has no parameter {name}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn it_is_served_without_a_token() {
    let mut tokens = Tokens::none();
    tokens.add_admin("s3cret").unwrap();
    let server = Server::start(ApiConfig {
        tokens,
        ..support::config()
    })
    .await;
    let reply = server.get("/openapi.json").await;
    reply.assert_status(200);
    assert_eq!(reply.body, openapi_document());
    server.get("/v1/tenants").await.assert_status(401);
}

/// The committed `openapi.json` is what the code generates. When it is
/// not, this test writes the new one and fails: commit it.
#[test]
fn the_committed_copy_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let fresh = format!(
        "{}\n",
        serde_json::to_string_pretty(&openapi_document()).unwrap()
    );
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        std::fs::write(&path, &fresh).unwrap();
        panic!(
            "{} was stale and has been regenerated: review and commit it",
            path.display()
        );
    }
}
