"""The daemon's account records: newest wins whatever the arrival order, self-trades keep both sides,
finished orders and old fills are pruned, and the codec round-trips."""

from __future__ import annotations

import orjson

import binance_common.accountstore as store
from binance_common.keys import Keys
from binance_streamd.account_state import DAY_MS, AccountState


def state() -> AccountState:
    return AccountState(Keys("t"), "acct1", 1000)


def report(status: str, executed: str, t: int, exec_type: str = "TRADE", trade: int = 7, order: int = 1) -> dict:
    return {"e": "executionReport", "E": t, "s": "BTCUSDT", "c": "c1", "S": "BUY", "o": "LIMIT", "f": "IOC",
            "q": "1.0", "p": "10.0", "P": "0", "F": "0", "g": -1, "C": "", "x": exec_type, "X": status, "r": "NONE",
            "i": order, "l": "0.5", "z": executed, "L": "10.0", "n": "0.01", "N": "BNB", "T": t, "t": trade, "I": 1,
            "w": False, "m": False, "M": False, "O": 1, "Z": "5.0", "Y": "5.0", "Q": "0", "W": 1, "V": "NONE"}


def stored_order(st: AccountState) -> dict:
    return st.orders["BTCUSDT:1"]


def test_an_older_record_never_replaces_a_newer_one():
    st = state()
    st.event(report("FILLED", "1.0", 200))
    assert st.order(store.order_from_rest({"symbol": "BTCUSDT", "orderId": 1, "status": "NEW", "executedQty": "0",
                                           "updateTime": 100})) == []
    assert stored_order(st)["status"] == "FILLED"


def test_equal_time_and_quantity_goes_to_the_terminal_status_in_either_order():
    for first, second in (("PARTIALLY_FILLED", "EXPIRED"), ("EXPIRED", "PARTIALLY_FILLED")):
        st = state()
        st.event(report(first, "0.5", 100, "TRADE" if first == "PARTIALLY_FILLED" else "EXPIRED"))
        st.event(report(second, "0.5", 100, "TRADE" if second == "PARTIALLY_FILLED" else "EXPIRED"))
        assert stored_order(st)["status"] == "EXPIRED"


def test_a_self_trade_keeps_both_fills_and_a_repeat_is_written_once():
    st = state()
    a = st.event(report("FILLED", "1.0", 100, trade=9, order=1))
    b = st.event(report("FILLED", "1.0", 100, trade=9, order=2))
    assert sorted(st.fill_keys) == ["BTCUSDT:9:1", "BTCUSDT:9:2"]
    assert any(c[0] == "HSET" and c[1].endswith(":fills") for c in a) and any(
        c[0] == "HSET" and c[1].endswith(":fills") for c in b)
    again = st.fill(store.fill_from_rest({"symbol": "BTCUSDT", "id": 9, "orderId": 2, "price": "10", "qty": "1",
                                          "quoteQty": "10", "commission": "0", "commissionAsset": "BNB", "time": 100,
                                          "isBuyer": True, "isMaker": False}))
    assert again == []


def test_balances_newest_wins_and_a_complete_rest_read_zeroes_missing_assets():
    st = state()
    st.balance_rows([("BTC", "1", "0"), ("ETH", "2", "0")], 100, "stream")
    assert st.balance_rows([("BTC", "0.5", "0")], 50, "stream") == []  # older
    cmds = st.balance_rows([("BTC", "3", "0")], 150, "rest", complete=True)
    assert st.balances["ETH"][:2] == ("0", "0") and st.balances["BTC"][:2] == ("3", "0")
    decoded = store.decode_balances(cmds[0][2])
    assert decoded is not None and decoded[0]["BTC"] == ("3", "0") and decoded[1] == 150


def test_prune_forgets_finished_orders_and_old_fills_only():
    st = state()
    now = 100 * DAY_MS
    st.order({"symbol": "BTCUSDT", "orderId": 1, "status": "FILLED", "executedQty": "1", "updateTime": now - 8 * DAY_MS})
    st.order({"symbol": "ETHUSDT", "orderId": 2, "status": "NEW", "executedQty": "0", "updateTime": now - 9 * DAY_MS})
    st.fill({"symbol": "BNBBTC", "id": 3, "orderId": 4, "time": now - 31 * DAY_MS})
    cmds = st.prune(now)
    assert cmds == [["HDEL", st.key("orders"), "BTCUSDT:1"], ["HDEL", st.key("fills"), "BNBBTC:3:4"]]
    assert set(st.orders) == {"ETHUSDT:2"} and st.symbols == {"ETHUSDT"}


def test_a_cancel_report_keeps_the_orders_own_client_id():
    e = report("CANCELED", "0", 100, "CANCELED") | {"c": "cancelreq", "C": "myorder"}
    assert store.order_from_report(e)["clientOrderId"] == "myorder"


def test_entries_round_trip():
    st = state()
    cmd = st.entry(store.GAP, {"from_ms": 1, "to_ms": 2, "reason": "x"})
    fields = {cmd[6]: cmd[7], cmd[8]: cmd[9]}
    assert store.decode_entry(fields) == ("gap", {"from_ms": 1, "to_ms": 2, "reason": "x"})
    assert orjson.loads(cmd[9])["reason"] == "x"
