-- SYNC: free the stage's disk now, not after the Atomic database's drop delay.
DROP TABLE IF EXISTS ${database}.${stage} SYNC
