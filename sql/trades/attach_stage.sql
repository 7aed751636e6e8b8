-- Hard-links the stage's checked parts into trades: no copy, and each part appears atomically.
ALTER TABLE ${database}.trades ATTACH PARTITION ID {partition_id:String} FROM ${database}.${stage}
