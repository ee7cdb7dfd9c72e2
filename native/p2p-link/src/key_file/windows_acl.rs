//! Owner-only files on Windows: a protected DACL (no inherited entries) with one entry granting the
//! current user full control, and a reader of a file's DACL entries (for tests on real Windows: wine
//! synthesizes entries for other accounts, so loading does not check them yet).

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, ERROR_SUCCESS, HANDLE};
use windows_sys::Win32::Security::Authorization::{
    GetNamedSecurityInfoW, SetSecurityInfo, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    AddAccessAllowedAceEx, EqualSid, GetAce, GetLengthSid, GetTokenInformation, InitializeAcl,
    IsWellKnownSid, TokenUser, WinBuiltinAdministratorsSid, WinLocalSystemSid, ACCESS_ALLOWED_ACE,
    ACE_HEADER, ACL, ACL_REVISION, CONTAINER_INHERIT_ACE, DACL_SECURITY_INFORMATION,
    OBJECT_INHERIT_ACE, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
    TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::FILE_ALL_ACCESS;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// `ACCESS_ALLOWED_ACE_TYPE` (SystemServices, a module not worth a feature for one constant).
const ACCESS_ALLOWED: u8 = 0;

/// The current user's SID, in a buffer that owns it (the `TOKEN_USER` it points into).
struct CurrentUser {
    buf: Vec<u64>,
}

impl CurrentUser {
    fn get() -> io::Result<CurrentUser> {
        // SAFETY: every pointer passed is valid for the call; the token handle is closed before return;
        // the buffer is u64-aligned (TOKEN_USER holds a pointer) and as long as the system said.
        unsafe {
            let mut token: HANDLE = std::ptr::null_mut();
            if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
                return Err(io::Error::last_os_error());
            }
            let mut len = 0u32;
            GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len);
            let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
            let ok = GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len);
            let err = io::Error::last_os_error();
            CloseHandle(token);
            if ok == 0 {
                return Err(err);
            }
            Ok(CurrentUser { buf })
        }
    }

    fn sid(&self) -> PSID {
        // SAFETY: the buffer holds the TOKEN_USER GetTokenInformation wrote.
        unsafe { (*(self.buf.as_ptr() as *const TOKEN_USER)).User.Sid }
    }
}

/// Gives the open file or directory a protected DACL granting only the current user full control
/// (for a directory, inherited by what is created in it).
pub fn restrict_to_owner(file: &impl AsRawHandle, directory: bool) -> io::Result<()> {
    let user = CurrentUser::get()?;
    // SAFETY: the ACL buffer is u32-aligned and as large as InitializeAcl is told; the SID stays alive
    // (in `user`) for the calls that read it; the handle is the caller's open file.
    unsafe {
        let sid_len = GetLengthSid(user.sid());
        let acl_len = std::mem::size_of::<ACL>() + std::mem::size_of::<ACCESS_ALLOWED_ACE>()
            - std::mem::size_of::<u32>()
            + sid_len as usize;
        let mut acl = vec![0u32; acl_len.div_ceil(4)];
        let acl_ptr = acl.as_mut_ptr() as *mut ACL;
        if InitializeAcl(acl_ptr, (acl.len() * 4) as u32, ACL_REVISION) == 0 {
            return Err(io::Error::last_os_error());
        }
        let inherit = if directory {
            OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE
        } else {
            0
        };
        if AddAccessAllowedAceEx(acl_ptr, ACL_REVISION, inherit, FILE_ALL_ACCESS, user.sid()) == 0 {
            return Err(io::Error::last_os_error());
        }
        let status = SetSecurityInfo(
            file.as_raw_handle() as HANDLE,
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            acl_ptr,
            std::ptr::null(),
        );
        if status != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(status as i32));
        }
    }
    Ok(())
}

/// Who the DACL of `path` lets in: for each access-allowed entry, whether its SID is the current
/// user, SYSTEM or Administrators (`true`) or another account (`false`). `None` for a file without a
/// DACL (everyone may open it) or one that cannot be read.
pub fn allowed_entries(path: &Path) -> Option<Vec<AllowedEntry>> {
    let user = CurrentUser::get().ok()?;
    let wide: Vec<u16> = path
        .as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect();
    // SAFETY: the name is NUL-terminated; the descriptor the system allocates is freed below and the
    // DACL pointer (inside it) is only used before that.
    unsafe {
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        let status = GetNamedSecurityInfoW(
            wide.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut descriptor,
        );
        if status != ERROR_SUCCESS {
            return None;
        }
        let entries = (!dacl.is_null()).then(|| {
            (0..u32::from((*dacl).AceCount))
                .filter_map(|i| {
                    let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
                    if GetAce(dacl, i, &mut ace) == 0 {
                        return None;
                    }
                    let header = &*(ace as *const ACE_HEADER);
                    if header.AceType != ACCESS_ALLOWED {
                        return None;
                    }
                    let ace = ace as *const ACCESS_ALLOWED_ACE;
                    let sid = std::ptr::addr_of!((*ace).SidStart) as PSID;
                    Some(AllowedEntry {
                        current_user: EqualSid(sid, user.sid()) != 0,
                        system_or_admins: IsWellKnownSid(sid, WinLocalSystemSid) != 0
                            || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0,
                        mask: (*ace).Mask,
                    })
                })
                .collect()
        });
        LocalFree(descriptor);
        entries
    }
}

/// One access-allowed entry of a DACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedEntry {
    pub current_user: bool,
    pub system_or_admins: bool,
    pub mask: u32,
}
