"""The task catalog (data) and the small normalizers that turn raw rows into canonical records."""
