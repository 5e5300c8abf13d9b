//! `crate = "..."` finds polyloop under another name.
mod runtime {
    pub use polyloop as inner;
}

#[::polyloop::policy_main(crate = "crate::runtime::inner")]
async fn main() {
    assert!(runtime::inner::get_running_loop().is_some());
}
