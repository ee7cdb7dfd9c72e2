//! `p2p_session_wait` and the cancellation tokens (`p2p_cancel_*`), through the C ABI as a host calls
//! them: a wait returns on a change, on its timeout, when its token is fired from another thread, and
//! with a clear code for an unknown session or token. The same tokens end the wait of a stop and abandon
//! a network self-test.

use std::ffi::CStr;
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use remoteitp2p::*;

mod support;
use support::{c, last_error, silent_server, take, SERVER_KEY};

/// A session that stays "Connecting" for seconds.
fn connecting_session() -> u64 {
    let json = c(&format!(
        r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"pw",
            "server":"{}","server_key":"{SERVER_KEY}","local_port":0}}"#,
        silent_server()
    ));
    let mut handle = 0;
    let rc = unsafe { p2p_session_start(json.as_ptr(), &mut handle) };
    assert_eq!(rc, P2P_OK, "{:?}", last_error());
    handle
}

/// `p2p_session_wait`: the code, and the status JSON on success (asserting `*out_json` is NULL otherwise).
fn wait(handle: u64, since: Option<&str>, timeout_ms: u32, cancel: u64) -> (i32, Option<String>) {
    let since = since.map(c);
    let mut out = ptr::null_mut();
    let rc = unsafe {
        p2p_session_wait(
            handle,
            since.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            timeout_ms,
            cancel,
            &mut out,
        )
    };
    if rc == P2P_OK {
        (rc, Some(take(out)))
    } else {
        assert!(out.is_null(), "no string on failure");
        (rc, None)
    }
}

fn state_of(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["state"].as_str().unwrap().to_string()
}

fn new_token() -> u64 {
    let mut token = 0;
    assert_eq!(unsafe { p2p_cancel_new(&mut token) }, P2P_OK);
    assert_ne!(token, 0);
    token
}

/// Fires `token` from another thread after `delay`.
fn fire_later(token: u64, delay: Duration) -> thread::JoinHandle<i32> {
    thread::spawn(move || {
        thread::sleep(delay);
        p2p_cancel_fire(token)
    })
}

#[test]
fn a_wait_returns_when_the_state_changes() {
    let handle = connecting_session();
    let stopper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        p2p_session_stop(handle, 5_000)
    });
    let begun = Instant::now();
    let (rc, json) = wait(handle, Some("Connecting"), 10_000, 0);
    let took = begun.elapsed();
    assert_eq!(rc, P2P_OK, "{:?}", last_error());
    assert_eq!(state_of(&json.unwrap()), "Stopped");
    assert!(
        took >= Duration::from_millis(250),
        "returned before the change: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "returned late: {took:?}");
    assert_eq!(stopper.join().unwrap(), P2P_OK);

    // A state that already differs from the one the caller saw: at once, even with no time to wait.
    let (rc, json) = wait(handle, Some("Connecting"), 0, 0);
    assert_eq!(rc, P2P_OK);
    assert_eq!(state_of(&json.unwrap()), "Stopped");
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn a_wait_without_a_state_returns_on_the_next_change() {
    let handle = connecting_session();
    let stopper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        p2p_session_stop(handle, 5_000)
    });
    let (rc, json) = wait(handle, None, 10_000, 0);
    assert_eq!(rc, P2P_OK, "{:?}", last_error());
    assert_eq!(state_of(&json.unwrap()), "Stopped");
    stopper.join().unwrap();
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn a_wait_times_out_without_a_change() {
    let handle = connecting_session();
    let begun = Instant::now();
    let (rc, _) = wait(handle, Some("Connecting"), 300, 0);
    let took = begun.elapsed();
    assert_eq!(rc, P2P_ERR_TIMEOUT);
    assert_eq!(last_error().0, "Timeout");
    assert!(took >= Duration::from_millis(280), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // 0 ms does not wait at all.
    let begun = Instant::now();
    assert_eq!(wait(handle, Some("Connecting"), 0, 0).0, P2P_ERR_TIMEOUT);
    assert!(begun.elapsed() < Duration::from_millis(200));

    // An ended session does not change again: waiting with its final state times out, it never spins.
    assert_eq!(p2p_session_stop(handle, 5_000), P2P_OK);
    let begun = Instant::now();
    assert_eq!(wait(handle, Some("Stopped"), 200, 0).0, P2P_ERR_TIMEOUT);
    assert!(begun.elapsed() >= Duration::from_millis(180));
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn a_fired_token_ends_the_wait_at_once() {
    let handle = connecting_session();
    let token = new_token();
    let firer = fire_later(token, Duration::from_millis(200));
    let begun = Instant::now();
    let (rc, _) = wait(handle, Some("Connecting"), 20_000, token);
    let took = begun.elapsed();
    assert_eq!(rc, P2P_ERR_CANCELLED);
    let (kind, message) = last_error();
    assert_eq!(kind, "Cancelled");
    assert!(message.contains("cancelled"), "{message}");
    assert!(took < Duration::from_secs(2), "the cancel took {took:?}");
    assert_eq!(firer.join().unwrap(), P2P_OK);

    // Firing is sticky: a later wait with the token ends at once; firing again is fine.
    let begun = Instant::now();
    assert_eq!(
        wait(handle, Some("Connecting"), 20_000, token).0,
        P2P_ERR_CANCELLED
    );
    assert!(begun.elapsed() < Duration::from_millis(500));
    assert_eq!(p2p_cancel_fire(token), P2P_OK);
    // The session itself is untouched by a cancelled wait.
    let (rc, json) = wait(handle, Some("Stopped"), 0, 0);
    assert_eq!(rc, P2P_OK);
    assert_eq!(state_of(&json.unwrap()), "Connecting");

    assert_eq!(p2p_cancel_free(token), P2P_OK);
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn one_token_cancels_waits_on_several_threads() {
    let handles: Vec<u64> = (0..3).map(|_| connecting_session()).collect();
    let token = new_token();
    let waiters: Vec<_> = handles
        .iter()
        .map(|&h| {
            thread::spawn(move || {
                let begun = Instant::now();
                (
                    wait(h, Some("Connecting"), 20_000, token).0,
                    begun.elapsed(),
                )
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(p2p_cancel_fire(token), P2P_OK);
    for w in waiters {
        let (rc, took) = w.join().unwrap();
        assert_eq!(rc, P2P_ERR_CANCELLED);
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    assert_eq!(p2p_cancel_free(token), P2P_OK);
    for h in handles {
        assert_eq!(p2p_session_forget(h), P2P_OK);
    }
}

#[test]
fn unknown_sessions_and_tokens_are_invalid_handles() {
    for handle in [0, 987_654_321, u64::MAX] {
        assert_eq!(wait(handle, None, 1_000, 0).0, P2P_ERR_INVALID_HANDLE);
        let (kind, message) = last_error();
        assert_eq!(kind, "InvalidHandle");
        assert!(message.contains(&handle.to_string()), "{message}");
    }
    // A forgotten session.
    let handle = connecting_session();
    assert_eq!(p2p_session_forget(handle), P2P_OK);
    assert_eq!(wait(handle, None, 1_000, 0).0, P2P_ERR_INVALID_HANDLE);

    // Tokens: 0 and made-up ids cannot be fired or freed; a freed token is gone; its message says "token".
    for token in [0, 987_654_321] {
        assert_eq!(p2p_cancel_fire(token), P2P_ERR_INVALID_HANDLE);
        assert_eq!(p2p_cancel_free(token), P2P_ERR_INVALID_HANDLE);
    }
    let token = new_token();
    assert_eq!(p2p_cancel_free(token), P2P_OK);
    assert_eq!(p2p_cancel_free(token), P2P_ERR_INVALID_HANDLE);
    assert_eq!(p2p_cancel_fire(token), P2P_ERR_INVALID_HANDLE);
    let handle = connecting_session();
    assert_eq!(wait(handle, None, 1_000, token).0, P2P_ERR_INVALID_HANDLE);
    let (kind, message) = last_error();
    assert_eq!(kind, "InvalidHandle");
    assert!(message.contains("cancellation token"), "{message}");
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn bad_arguments_are_invalid_arguments() {
    let handle = connecting_session();
    assert_eq!(
        wait(handle, Some("Sleeping"), 0, 0).0,
        P2P_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().1.contains("Sleeping"));
    let since = c("Connecting");
    assert_eq!(
        unsafe { p2p_session_wait(handle, since.as_ptr(), 0, 0, ptr::null_mut()) },
        P2P_ERR_INVALID_ARGUMENT
    );
    let bad_utf8 = [0xffu8, 0xfe, 0];
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { p2p_session_wait(handle, bad_utf8.as_ptr().cast(), 0, 0, &mut out) },
        P2P_ERR_INVALID_ARGUMENT
    );
    assert!(out.is_null());
    assert_eq!(
        unsafe { p2p_cancel_new(ptr::null_mut()) },
        P2P_ERR_INVALID_ARGUMENT
    );
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn a_token_freed_during_a_wait_leaves_it_safe() {
    let handle = connecting_session();
    let token = new_token();
    let waiter = thread::spawn(move || wait(handle, Some("Connecting"), 500, token).0);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(p2p_cancel_free(token), P2P_OK);
    // The wait holds its own reference: it ends by its timeout, and nothing breaks.
    assert_eq!(waiter.join().unwrap(), P2P_ERR_TIMEOUT);
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn stop_takes_a_token() {
    let handle = connecting_session();
    // An unknown token: refused before anything is stopped.
    assert_eq!(
        p2p_session_stop_cancellable(handle, 5_000, 987_654_321),
        P2P_ERR_INVALID_HANDLE
    );
    let (rc, json) = wait(handle, Some("Stopped"), 0, 0);
    assert_eq!(rc, P2P_OK);
    assert_eq!(state_of(&json.unwrap()), "Connecting");
    // With a live token that nobody fires it is p2p_session_stop.
    let token = new_token();
    assert_eq!(p2p_session_stop_cancellable(handle, 5_000, token), P2P_OK);
    let (_, json) = wait(handle, Some("Connecting"), 0, 0);
    assert_eq!(state_of(&json.unwrap()), "Stopped");
    assert_eq!(p2p_session_stop_cancellable(handle, 5_000, 0), P2P_OK);
    // A fired token ends the wait of a stop, never the stop itself: the session still ends.
    let other = connecting_session();
    assert_eq!(p2p_cancel_fire(token), P2P_OK);
    let rc = p2p_session_stop_cancellable(other, 5_000, token);
    assert!(rc == P2P_OK || rc == P2P_ERR_CANCELLED, "{rc}");
    let (rc, json) = wait(other, Some("Connecting"), 5_000, 0);
    assert_eq!(rc, P2P_OK);
    assert_eq!(state_of(&json.unwrap()), "Stopped");
    assert_eq!(p2p_cancel_free(token), P2P_OK);
    assert_eq!(p2p_session_forget(handle), P2P_OK);
    assert_eq!(p2p_session_forget(other), P2P_OK);
}

#[test]
fn a_fired_token_abandons_the_network_test() {
    // The silent server holds the self-test for its whole timeout (20 s here) unless it is cancelled.
    let options = c(&format!(
        r#"{{"server":"{}","server_key":"{SERVER_KEY}","timeout_ms":20000,"gateways":false}}"#,
        silent_server()
    ));
    let token = new_token();
    let firer = fire_later(token, Duration::from_millis(300));
    let begun = Instant::now();
    let mut out = ptr::null_mut();
    let rc = unsafe { p2p_network_test_cancellable(options.as_ptr(), token, &mut out) };
    let took = begun.elapsed();
    assert_eq!(rc, P2P_ERR_CANCELLED, "{:?}", last_error());
    assert!(out.is_null());
    assert_eq!(last_error().0, "Cancelled");
    assert!(took < Duration::from_secs(3), "the cancel took {took:?}");
    assert_eq!(firer.join().unwrap(), P2P_OK);
    assert_eq!(p2p_cancel_free(token), P2P_OK);

    // Without a token (0) it is p2p_network_test.
    let quick = c(r#"{"server":"127.0.0.1:9","timeout_ms":500,"gateways":false}"#);
    assert_eq!(
        unsafe { p2p_network_test_cancellable(quick.as_ptr(), 0, &mut out) },
        P2P_OK
    );
    let report: serde_json::Value = serde_json::from_str(&take(out)).unwrap();
    assert_eq!(report["compatible"], false);
    // An unknown token is refused before any probe.
    assert_eq!(
        unsafe { p2p_network_test_cancellable(quick.as_ptr(), 987_654_321, &mut out) },
        P2P_ERR_INVALID_HANDLE
    );
    assert!(out.is_null());
}

#[test]
fn cancelled_has_a_name() {
    let name = unsafe { CStr::from_ptr(p2p_result_name(P2P_ERR_CANCELLED)) };
    assert_eq!(name.to_str().unwrap(), "Cancelled");
}
