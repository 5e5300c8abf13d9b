#[polyloop::policy_main]
async fn main(workers: usize) {
    let _ = workers;
}
