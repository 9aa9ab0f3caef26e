// A subscriber takes one of `Counter`'s events only.
include!("common/counter.rs");
include!("common/get_count.rs");

async fn mistake(client: &Client) -> Result<(), CallError> {
    let _stream = client.actor::<Counter>("c1").subscribe::<Reset, _>().await?;
    Ok(())
}

fn main() {
    let _ = mistake;
}
