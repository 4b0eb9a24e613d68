package awstranscribe

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// minPartBytes is S3's smallest multipart part (all but the last).
const minPartBytes = 5 << 20

// uploader is an io.Writer that stores what is written as one S3 object
// encrypted with SSE-KMS: a single PutObject when it all fits in one part,
// a multipart upload otherwise. It holds at most one part in memory.
type uploader struct {
	ctx      context.Context
	api      s3API
	bucket   string
	key      string
	kmsKey   string // empty: the account's AWS managed key for S3
	partSize int

	buf      []byte
	uploadID *string
	parts    []s3types.CompletedPart
}

func (u *uploader) sse() (s3types.ServerSideEncryption, *string) {
	if u.kmsKey == "" {
		return s3types.ServerSideEncryptionAwsKms, nil
	}
	return s3types.ServerSideEncryptionAwsKms, aws.String(u.kmsKey)
}

func (u *uploader) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := u.partSize - len(u.buf)
		take := min(room, len(p))
		u.buf = append(u.buf, p[:take]...)
		p = p[take:]
		if len(u.buf) == u.partSize {
			if err := u.uploadPart(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (u *uploader) uploadPart() error {
	if u.uploadID == nil {
		sse, key := u.sse()
		out, err := u.api.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{
			Bucket:               aws.String(u.bucket),
			Key:                  aws.String(u.key),
			ContentType:          aws.String("audio/wav"),
			ServerSideEncryption: sse,
			SSEKMSKeyId:          key,
		})
		if err != nil {
			return fmt.Errorf("start multipart upload: %w", err)
		}
		if out.UploadId == nil {
			return errors.New("start multipart upload: no upload id in the answer")
		}
		u.uploadID = out.UploadId
	}
	num := int32(len(u.parts) + 1)
	out, err := u.api.UploadPart(u.ctx, &s3.UploadPartInput{
		Bucket:     aws.String(u.bucket),
		Key:        aws.String(u.key),
		UploadId:   u.uploadID,
		PartNumber: aws.Int32(num),
		Body:       bytes.NewReader(u.buf),
	})
	if err != nil {
		return fmt.Errorf("upload part %d: %w", num, err)
	}
	u.parts = append(u.parts, s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	u.buf = u.buf[:0]
	return nil
}

// Close stores the rest and completes the object.
func (u *uploader) Close() error {
	if u.uploadID == nil {
		sse, key := u.sse()
		_, err := u.api.PutObject(u.ctx, &s3.PutObjectInput{
			Bucket:               aws.String(u.bucket),
			Key:                  aws.String(u.key),
			Body:                 bytes.NewReader(u.buf),
			ContentLength:        aws.Int64(int64(len(u.buf))),
			ContentType:          aws.String("audio/wav"),
			ServerSideEncryption: sse,
			SSEKMSKeyId:          key,
		})
		if err != nil {
			return fmt.Errorf("put object: %w", err)
		}
		return nil
	}
	if len(u.buf) > 0 {
		if err := u.uploadPart(); err != nil {
			return err
		}
	}
	_, err := u.api.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.bucket),
		Key:             aws.String(u.key),
		UploadId:        u.uploadID,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// Abort discards an unfinished multipart upload (its parts are stored
// data too).
func (u *uploader) Abort(ctx context.Context) error {
	if u.uploadID == nil {
		return nil
	}
	_, err := u.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.bucket), Key: aws.String(u.key), UploadId: u.uploadID,
	})
	return err
}
