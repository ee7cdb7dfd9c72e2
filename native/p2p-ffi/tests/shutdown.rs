//! `p2p_shutdown` stops every session of the process, so it runs in its own test binary (process).

use std::ffi::{c_char, CStr, CString};
use std::net::{SocketAddr, TcpListener};
use std::ptr;

use remoteitp2p::*;

const CONFIG: &str = r#"{"device_id":"80:00:00:00:01:00:0A:C2","user":"u","password":"p","server":"127.0.0.1:9","server_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","local_port":0}"#;

fn start() -> u64 {
    let text = CString::new(CONFIG).unwrap();
    let mut handle = 0;
    assert_eq!(
        unsafe { p2p_session_start(text.as_ptr(), &mut handle) },
        P2P_OK
    );
    handle
}

fn endpoint(handle: u64) -> SocketAddr {
    let mut out: *mut c_char = ptr::null_mut();
    assert_eq!(unsafe { p2p_session_status(handle, &mut out) }, P2P_OK);
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_string();
    unsafe { p2p_string_free(out) };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["local_endpoint"].as_str().unwrap().parse().unwrap()
}

#[test]
fn shutdown_stops_everything_and_can_repeat() {
    let handles: Vec<u64> = (0..3).map(|_| start()).collect();
    let endpoints: Vec<SocketAddr> = handles.iter().map(|h| endpoint(*h)).collect();
    assert_eq!(p2p_shutdown(5_000), P2P_OK);
    for (handle, endpoint) in handles.iter().zip(endpoints) {
        assert_eq!(p2p_session_stop(*handle, 10), P2P_ERR_INVALID_HANDLE);
        assert!(TcpListener::bind(endpoint).is_ok(), "{endpoint} is free");
    }
    assert_eq!(p2p_shutdown(0), P2P_OK);
}
