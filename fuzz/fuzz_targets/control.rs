//! The control socket's request line (`Request::parse`, as the server
//! reads it): any bytes a client sends get an action or an error, never a
//! panic; what parses prints (`Display`, the client's side) as a line
//! that parses back to the same request.
use undead_fuzz::request::Request;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(req) = Request::parse(data) else { return };
        let again = Request::parse(req.to_string().as_bytes());
        assert_eq!(again.as_ref(), Ok(&req), "{req}");
        let _ = req.into_action();
    });
}
