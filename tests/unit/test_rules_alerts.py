"""Which alerts a record publication sends: changes normally, the whole alert history on a redelivery."""

from streams.rules import alert_id, alerts_for_publish, flag

LOT = "L-1"
A = flag("oversold", None, "3 units sold, 2 packaged")
B = flag("expired", "e1", "sell after expiry")
RECALL = {"event_id": "r1", "scope": "lot", "target": LOT, "reason": "x", "authority": "", "occurred_at": "t"}


def rec(*flags, recall=None):
    return {"flags": list(flags), "recall": recall}


def states(alerts):
    return sorted((a["rule"], a["state"]) for a in alerts)


def test_changes_only():
    out, resolved = alerts_for_publish(LOT, {}, rec(A), "now", force=False)
    assert states(out) == [("oversold", "open")] and resolved == []
    last = {"flags": [A], "resolved": resolved}
    out, resolved = alerts_for_publish(LOT, last, rec(B), "now", force=False)
    assert states(out) == [("expired", "open"), ("oversold", "resolved")]
    assert resolved == [A]
    out, _ = alerts_for_publish(LOT, {"flags": [B], "resolved": [A]}, rec(B), "now", force=False)
    assert out == []


def test_recall_alert_once_unless_redelivered():
    out, _ = alerts_for_publish(LOT, {}, rec(recall=RECALL), "now", force=False)
    assert states(out) == [("recalled", "open")]
    last = {"flags": [], "resolved": [], "recall": RECALL}
    assert alerts_for_publish(LOT, last, rec(recall=RECALL), "now", force=False)[0] == []
    assert states(alerts_for_publish(LOT, last, rec(recall=RECALL), "now", force=True)[0]) == [("recalled", "open")]


def test_redelivery_resends_every_alert_the_lot_had():
    last = {"flags": [B], "resolved": [A]}
    out, resolved = alerts_for_publish(LOT, last, rec(B), "now", force=True)
    assert states(out) == [("expired", "open"), ("oversold", "resolved")]
    assert {a["alert_id"] for a in out} == {alert_id(LOT, A), alert_id(LOT, B)}
    assert resolved == [A]
