// Package s3 is the production blob back end: sealed objects in an S3 or
// S3-compatible bucket, through github.com/aws/aws-sdk-go-v2/service/s3.
//
// In the data flow it sits where storage/disk sits in the embedded default:
// at the end of the write path, after the envelope has sealed a part and
// the spool has made it durable locally. Put returns once S3 has
// acknowledged the object. Reads use ranged GETs. With Config.ObjectLock
// set, every Put carries the Object Lock mode and retain-until date from
// storage.PutOptions, and the Store implements storage.LegalHolder.
//
// Credentials come only from the AWS SDK's default chain (environment,
// shared files, web identity, instance role), never from Custodian's
// config file. IsRetryable tells the spool which failures are worth
// retrying (outages, throttling, 5xx) and which are not (denied, missing
// bucket, invalid request).
//
// The package's tests run the storage/storagetest conformance suite and the
// Object Lock tests against a real versitygw process (storage/s3/s3test).
package s3
