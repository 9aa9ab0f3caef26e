use super::*;

const CLIENT: &str = "client-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

fn check(client: Option<&str>, admin: Option<&str>, level: Level) -> Check {
    let tokens = Tokens {
        client: client.map(|t| Token::new(t).unwrap()),
        admin: admin.map(|t| Token::new(t).unwrap()),
    };
    Check::new(Arc::new(tokens), level)
}

fn request(token: Option<&str>) -> Request<()> {
    let mut request = Request::new(());
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn code(check: &mut Check, token: Option<&str>) -> tonic::Code {
    match check.call(request(token)) {
        Ok(_) => tonic::Code::Ok,
        Err(status) => {
            // Never an echo of what was presented.
            if let Some(token) = token.filter(|t| !t.is_empty()) {
                assert!(!status.message().contains(token), "{}", status.message());
            }
            status.code()
        }
    }
}

#[test]
fn without_tokens_everything_passes() {
    for level in [Level::Client, Level::Admin] {
        assert_eq!(code(&mut check(None, None, level), None), tonic::Code::Ok);
        assert_eq!(code(&mut check(None, None, level), Some("anything-at-all-0000")), tonic::Code::Ok);
    }
}

#[test]
fn client_services_take_either_token_and_refuse_others() {
    let mut c = check(Some(CLIENT), Some(ADMIN), Level::Client);
    assert_eq!(code(&mut c, Some(CLIENT)), tonic::Code::Ok);
    assert_eq!(code(&mut c, Some(ADMIN)), tonic::Code::Ok);
    assert_eq!(code(&mut c, None), tonic::Code::Unauthenticated);
    assert_eq!(code(&mut c, Some("client-token-012345678")), tonic::Code::Unauthenticated);
    assert_eq!(code(&mut c, Some("")), tonic::Code::Unauthenticated);
}

#[test]
fn admin_services_refuse_the_client_token_with_permission_denied() {
    let mut a = check(Some(CLIENT), Some(ADMIN), Level::Admin);
    assert_eq!(code(&mut a, Some(ADMIN)), tonic::Code::Ok);
    assert_eq!(code(&mut a, Some(CLIENT)), tonic::Code::PermissionDenied);
    assert_eq!(code(&mut a, None), tonic::Code::Unauthenticated);
    assert_eq!(code(&mut a, Some("guess-guess-guess-guess")), tonic::Code::Unauthenticated);
    // With a client token only, administration needs that token rather than nothing.
    let mut only_client = check(Some(CLIENT), None, Level::Admin);
    assert_eq!(code(&mut only_client, Some(CLIENT)), tonic::Code::Ok);
    assert_eq!(code(&mut only_client, None), tonic::Code::Unauthenticated);
}

#[test]
fn a_request_with_a_bearer_passes_a_check_of_the_same_token() {
    let token = Token::new(ADMIN).unwrap();
    let mut bearer = Bearer(Some(token.clone()));
    let request = bearer.call(Request::new(())).unwrap();
    let tokens = Tokens { client: None, admin: Some(token) };
    assert!(Check::new(Arc::new(tokens), Level::Admin).call(request).is_ok());
    assert!(Bearer(None).call(Request::new(())).unwrap().metadata().get("authorization").is_none());
}

#[test]
fn bad_tokens_and_files_are_refused_without_showing_them() {
    assert!(Token::new("short").unwrap_err().contains("at least 16"));
    assert!(Token::new("has a space in it, long").unwrap_err().contains("visible ASCII"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{ADMIN}\n")).unwrap();
    let token = Token::from_file(&path).unwrap();
    assert!(token.matches(ADMIN));
    assert!(!format!("{token:?}").contains(ADMIN));
    std::fs::write(&path, "tiny\n").unwrap();
    assert!(!Token::from_file(&path).unwrap_err().contains("tiny"));
    assert!(Token::from_file(&dir.path().join("missing")).is_err());
}
