"""Binance USDⓈ-M error codes and messages, as the REST API returns them (``{"code": -2019, "msg": ...}``)."""

from __future__ import annotations

from dataclasses import dataclass

# Messages copied from Binance's error-code page so that clients matching on text (ccxt's "broad" table) behave as
# they do against the real exchange.
MESSAGES: dict[int, str] = {
    -1000: "An unknown error occured while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1003: "Too many requests; current limit is %s requests per minute. Please use the websocket for live updates to avoid polling the API.",
    -1008: "Request throttled by system-level protection. Reduce-only/close-position orders are exempt. Please try again.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1100: "Illegal characters found in a parameter.",
    -1102: "Mandatory parameter '%s' was not sent, was empty/null, or malformed.",
    -1106: "Parameter '%s' sent when not required.",
    -1111: "Precision is over the maximum defined for this asset.",
    -1115: "Invalid timeInForce.",
    -1116: "Invalid orderType.",
    -1117: "Invalid side.",
    -1121: "Invalid symbol.",
    -1125: "This listenKey does not exist. Please use POST /fapi/v1/listenKey to recreate listenKey",
    -1130: "Data sent for parameter '%s' is not valid.",
    -2011: "Unknown order sent.",
    -2013: "Order does not exist.",
    -2014: "API-key format invalid.",
    -2015: "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1",
    -2019: "Margin is insufficient.",
    -2021: "Order would immediately trigger.",
    -2022: "ReduceOnly Order is rejected.",
    -2023: "User in liquidation mode now.",
    -2025: "Reach max open order limit.",
    -2027: "Exceeded the maximum allowable position at current leverage.",
    -4002: "Price greater than max price.",
    -4003: "Quantity less than or equal to zero.",
    -4004: "Quantity less than min quantity.",
    -4005: "Quantity greater than max quantity.",
    -4013: "Price less than min price.",
    -4014: "Price not increased by tick size.",
    -4016: "Price is higher than mark price multiplier cap.",
    -4023: "Qty not increased by step size.",
    -4024: "Price is lower than mark price multiplier floor.",
    -4028: "Leverage %s is not valid",
    -4046: "No need to change margin type.",
    -4047: "Margin type cannot be changed if there exists open orders.",
    -4048: "Margin type cannot be changed if there exists position.",
    -4059: "No need to change position side.",
    -4061: "Order's position side does not match user's setting.",
    -4067: "Position side cannot be changed if there exists open orders.",
    -4068: "Position side cannot be changed if there exists position.",
    -4116: "ClientOrderId is duplicated.",
    -4120: "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
    -4131: "The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
    -4136: "Target strategy invalid for orderType %s,closePosition %s",
    -4164: "Order's notional must be no smaller than %s (unless you choose reduce only).",
    -4171: "Adjusted leverage %s is not valid",
    -5021: "Due to the order could not be filled immediately, the FOK order has been rejected. The order will not be recorded in the order history",
    -5022: "Due to the order could not be executed as maker, the Post Only order will be rejected. The order will not be recorded in the order history",
    -20132: "The client algo id is duplicated.",
}


@dataclass
class BinanceError(Exception):
    """A rejection the REST layer turns into ``HTTP <status>`` + ``{"code", "msg"}``."""

    code: int
    msg: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code} {self.msg}"

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def err(code: int, *args: object, status: int = 400) -> BinanceError:
    """Build the error for ``code``; ``args`` fill the ``%s`` slots of Binance's message template."""
    template = MESSAGES.get(code, "Unknown error.")
    msg = template % args if args and "%s" in template else template.replace("%s", "") if "%s" in template else template
    return BinanceError(code, msg, status)
