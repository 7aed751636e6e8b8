-- The frames of one flush parsed and checked once: the kind of message, why it is refused ('' if it is
-- not), and the typed fields of aggregate trades, individual trades and closed klines. Prices and
-- quantities must be plain decimal strings with at most 18 fractional digits, converted exactly. Times are decided ms or µs by
-- magnitude (the client asks for µs); ts is always µs, kline times ms.
CREATE TABLE ${database}.${parsed} ENGINE = Memory AS
SELECT
    n, raw, kind,
    multiIf(
        kind = 'invalid', 'not valid JSON',
        kind = 'unknown', concat('not a combined-stream message of a subscribed kind (stream ', stream, ')'),
        -- aggregate trades (aggTrade: id a, trade ids f..l) and individual trades (trade: id t) share their checks
        kind IN ('agg_trade', 'trade') AND fast, '',  -- typed and checked by the fast path below
        kind IN ('agg_trade', 'trade'), multiIf(
            JSONExtractString(d, 'e') != event, concat('data.e is not "', event, '"'),
            NOT match(JSONExtractString(d, 's'), '^[A-Z0-9_]{2,40}$') OR lower(JSONExtractString(d, 's')) != stream_symbol,
                'data.s is missing or does not match the stream',
            JSONType(d, id_key) NOT IN ('Int64', 'UInt64') OR JSONExtractInt(d, id_key) < 0,
                if(kind = 'trade', 'data.t (trade id) is not a non-negative integer',
                                   'data.a (aggregate id) is not a non-negative integer'),
            JSONType(d, 'p') != 'String' OR NOT match(JSONExtractString(d, 'p'), '^[0-9]{1,20}(\\.[0-9]{1,18})?$'),
                'data.p (price) is not a plain decimal string',
            JSONType(d, 'q') != 'String' OR NOT match(JSONExtractString(d, 'q'), '^[0-9]{1,20}(\\.[0-9]{1,18})?$'),
                'data.q (quantity) is not a plain decimal string',
            toDecimal128(JSONExtractString(d, 'p'), 18) <= 0, 'data.p (price) is not positive',
            toDecimal128(JSONExtractString(d, 'q'), 18) <= 0, 'data.q (quantity) is not positive',
            kind = 'agg_trade' AND (JSONType(d, 'f') NOT IN ('Int64', 'UInt64') OR JSONType(d, 'l') NOT IN ('Int64', 'UInt64')
                OR JSONExtractInt(d, 'f') < 0 OR JSONExtractInt(d, 'f') > JSONExtractInt(d, 'l')),
                'data.f/data.l (trade ids) are not integers with f <= l',
            JSONType(d, 'T') NOT IN ('Int64', 'UInt64') OR JSONExtractInt(d, 'T') <= 0, 'data.T (trade time) is not a positive integer',
            JSONType(d, 'm') != 'Bool', 'data.m (buyer is maker) is not a boolean',
            ''),
        kind = 'kline', multiIf(
            JSONExtractString(d, 'e') != 'kline' OR JSONType(d, 'k') != 'Object', 'data is not a kline event with k',
            NOT match(JSONExtractString(k, 's'), '^[A-Z0-9_]{2,40}$') OR lower(JSONExtractString(k, 's')) != stream_symbol,
                'data.k.s is missing or does not match the stream',
            JSONExtractString(k, 'i') != '1m', 'data.k.i is not 1m',
            JSONType(k, 't') NOT IN ('Int64', 'UInt64') OR JSONType(k, 'T') NOT IN ('Int64', 'UInt64')
                OR JSONType(k, 'n') NOT IN ('Int64', 'UInt64') OR JSONType(k, 'x') != 'Bool',
                'data.k.t/T/n/x have the wrong types',
            NOT arrayAll(x -> JSONType(k, x) = 'String' AND match(JSONExtractString(k, x), '^[0-9]{1,20}(\\.[0-9]{1,18})?$'),
                         ['o', 'h', 'l', 'c', 'v', 'q', 'V', 'Q']),
                'data.k prices and volumes (o h l c v q V Q) must be plain decimal strings',
            NOT (toDecimal128(JSONExtractString(k, 'l'), 18) <= least(toDecimal128(JSONExtractString(k, 'o'), 18), toDecimal128(JSONExtractString(k, 'c'), 18))
                 AND greatest(toDecimal128(JSONExtractString(k, 'o'), 18), toDecimal128(JSONExtractString(k, 'c'), 18)) <= toDecimal128(JSONExtractString(k, 'h'), 18)),
                'data.k breaks low <= open, close <= high',
            ''),
        '') AS reason,
    upper(stream_symbol) AS symbol,
    -- trade fields (meaningful when kind is 'agg_trade' or 'trade' and reason = ''; f and l only for agg_trade)
    toUInt64(greatest(if(kind = 'trade', tj.t, tj.a), 0))                            AS trade_id,
    tj.p_dec                                                                          AS price,
    tj.q_dec                                                                          AS qty,
    toUInt64(greatest(tj.f, 0))                                                       AS first_trade_id,
    toUInt64(greatest(tj.l, 0))                                                       AS last_trade_id,
    fromUnixTimestamp64Micro(if(tj.T > 100000000000000, tj.T, tj.T * 1000), 'UTC')    AS ts,
    tj.m                                                                              AS is_buyer_maker,
    -- closed kline fields (meaningful when kind = 'kline' and reason = '')
    JSONExtractBool(k, 'x')                                                           AS closed,
    fromUnixTimestamp64Milli(if(JSONExtractInt(k, 't') > 100000000000000, intDiv(JSONExtractInt(k, 't'), 1000),
                                JSONExtractInt(k, 't')), 'UTC')                       AS open_time,
    toDecimal128OrZero(JSONExtractString(k, 'o'), 18) AS k_open,
    toDecimal128OrZero(JSONExtractString(k, 'h'), 18) AS k_high,
    toDecimal128OrZero(JSONExtractString(k, 'l'), 18) AS k_low,
    toDecimal128OrZero(JSONExtractString(k, 'c'), 18) AS k_close,
    toDecimal128OrZero(JSONExtractString(k, 'v'), 18) AS k_volume,
    toDecimal128OrZero(JSONExtractString(k, 'q'), 18) AS k_quote_volume,
    toUInt64(greatest(JSONExtractInt(k, 'n'), 0))     AS k_trades,
    toDecimal128OrZero(JSONExtractString(k, 'V'), 18) AS k_taker_buy_base_volume,
    toDecimal128OrZero(JSONExtractString(k, 'Q'), 18) AS k_taker_buy_quote_volume
FROM
(
    SELECT
        rowNumberInAllBlocks() AS n, raw, d, k, stream, stream_symbol, fast, tj,
        multiIf(
            fast AND is_trade, 'trade',
            fast, 'agg_trade',
            NOT isValidJSON(raw), 'invalid',
            JSONHas(raw, 'result') OR JSONHas(raw, 'error') OR stream = '!serverShutdown', 'control',
            endsWith(stream, '@aggTrade') AND JSONType(raw, 'data') = 'Object', 'agg_trade',
            endsWith(stream, '@trade') AND JSONType(raw, 'data') = 'Object', 'trade',
            endsWith(stream, '@kline_1m') AND JSONType(raw, 'data') = 'Object', 'kline',
            'unknown') AS kind,
        if(kind = 'trade', 'trade', 'aggTrade') AS event,
        if(kind = 'trade', 't', 'a') AS id_key
    FROM
    (
        SELECT
            raw, stream, stream_symbol, is_trade, tj,
            canonical AND tj.p_dec > 0 AND tj.q_dec > 0 AND tj.T > 0 AND (is_trade OR tj.f <= tj.l)
                AND lower(tj.s) = stream_symbol AS fast,
            -- only frames off the fast path need the field-by-field checks (short-circuit evaluation)
            if(fast, '', JSONExtractRaw(raw, 'data')) AS d,
            if(fast, '', JSONExtractRaw(JSONExtractRaw(raw, 'data'), 'k')) AS k
        FROM
        (
            SELECT
                raw, JSONExtractString(raw, 'stream') AS stream, splitByChar('@', stream)[1] AS stream_symbol,
                endsWith(stream, '@trade') AS is_trade,
                -- The fast path: a frame in Binance's exact layout (field order, types, plain decimals of at
                -- most 18 digits) is typed by one match; any other frame gets the field-by-field checks.
               match(raw, concat('^\\{"stream":"[a-z0-9_]{2,40}@aggTrade","data":\\{"e":"aggTrade","E":[0-9]{1,18},',
                                 '"s":"[A-Z0-9_]{2,40}","a":[0-9]{1,18},"p":"[0-9]{1,20}(\\.[0-9]{1,18})?","q":"[0-9]{1,20}(\\.[0-9]{1,18})?","f":[0-9]{1,18},"l":[0-9]{1,18},',
                                 '"T":[0-9]{1,18},"m":(true|false),"M":(true|false)\\}\\}$'))
               OR match(raw, concat('^\\{"stream":"[a-z0-9_]{2,40}@trade","data":\\{"e":"trade","E":[0-9]{1,18},',
                                    '"s":"[A-Z0-9_]{2,40}","t":[0-9]{1,18},"p":"[0-9]{1,20}(\\.[0-9]{1,18})?","q":"[0-9]{1,20}(\\.[0-9]{1,18})?",',
                                    '"T":[0-9]{1,18},"m":(true|false),"M":(true|false)\\}\\}$')) AS canonical,
                -- The trade fields in one parse (lenient about types, so used only for frames whose types
                -- were checked: by the match, or field by field above).
                CAST(JSONExtract(raw, 'data', 'Tuple(a Int64, t Int64, p String, q String, f Int64, l Int64, T Int64, m Bool, s String)'),
                     'Tuple(a Int64, t Int64, p String, q String, f Int64, l Int64, T Int64, m Bool, s String)') AS tj0,
                tuple(tj0.a, tj0.t, tj0.p, tj0.q, tj0.f, tj0.l, tj0.T, tj0.m, tj0.s,
                      toDecimal128OrZero(tj0.p, 18), toDecimal128OrZero(tj0.q, 18))
                    ::Tuple(a Int64, t Int64, p String, q String, f Int64, l Int64, T Int64, m Bool, s String,
                            p_dec Decimal(38, 18), q_dec Decimal(38, 18)) AS tj
            FROM ${database}.${raw}
        )
    )
)
