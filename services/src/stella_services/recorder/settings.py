from __future__ import annotations

from pydantic import AliasChoices, Field

from stella_services.runtime.settings import ServiceSettings


class RecorderSettings(ServiceSettings):
    clickhouse_url: str = Field(
        default="",
        validation_alias=AliasChoices("CLICKHOUSE_URL", "STELLA_CLICKHOUSE_URL"),
        description="http(s)://user:pass@host:8123/ for a server; chdb:///dir for embedded; "
        "empty means chdb under STELLA_DATA_DIR/clickhouse",
    )
    history_addr: str = Field(default="127.0.0.1:50051", description="gRPC listen address")
    batch_size: int = Field(default=5000, ge=1, le=50_000)
    batch_wait_ms: int = Field(default=50, ge=1, description="longest a fetch waits to fill")
    ack_wait_s: float = Field(default=10.0, gt=0, description="redelivery delay after a crash")
    consumer: str = Field(default="recorder", description="durable JetStream consumer name")
    query_max_rows: int = Field(default=10_000, ge=1)

    def clickhouse_dsn(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb:///{(self.data_dir / 'clickhouse').resolve()}"
