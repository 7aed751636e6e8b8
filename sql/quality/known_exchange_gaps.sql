-- Exchange gaps already recorded for one symbol and kind.
SELECT DISTINCT first, last
FROM ${database}.exchange_gaps
WHERE exchange = {exchange:String} AND symbol = {symbol:String} AND kind = {kind:String}
