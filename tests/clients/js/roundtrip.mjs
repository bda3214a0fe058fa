// The AWS SDK for JavaScript v3 against an Ignifuge gateway, as a Node user would drive it.
//
// Usage: node tests/clients/js/roundtrip.mjs BUCKET
// Reads AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION from the
// environment. The client keeps the SDK's default retry and checksum settings (CRC32 on
// uploads, response validation when supported): those defaults are what users get.
// Prints one `ok: ...` line per step and `all checks passed` at the end; on the first
// failure prints `FAILED: ...` to stderr and exits 1 (2 for a usage error). A step listed in
// KNOWN_SERVER_BUGS prints `FAILED (server): ...` and the run goes on (exit status 3 at the
// end if any did), so a server bug is reported, never hidden.

import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { crc32 } from "node:zlib";

import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
  paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const MiB = 1024 * 1024;

// Steps whose failure is the server's, known and reported elsewhere: they print
// `FAILED (server): ...` and the run goes on. Empty while the server gets everything right.
const KNOWN_SERVER_BUGS = new Set([]);

let serverFailures = 0;

function usage(message) {
  console.error(`usage: node roundtrip.mjs BUCKET\n${message}`);
  process.exit(2);
}

class CheckError extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckError(message);
}

function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

function md5(bytes) {
  return createHash("md5").update(bytes).digest("hex");
}

// The base64 big-endian CRC32 that S3 puts in x-amz-checksum-crc32.
function crc32Base64(bytes) {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(bytes) >>> 0);
  return out.toString("base64");
}

function sameBytes(a, b) {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

// The last raw HTTP response the SDK received, kept to describe a failure.
let lastResponse = null;

function describeError(err) {
  if (err instanceof CheckError) return err.message;
  const parts = [`${err.name}: ${err.message}`];
  const meta = err.$metadata;
  if (meta) {
    parts.push(
      `httpStatusCode=${meta.httpStatusCode} requestId=${meta.requestId} attempts=${meta.attempts}`,
    );
  }
  if (err.Code && err.Code !== err.name) parts.push(`Code=${err.Code}`);
  if (err.$fault) parts.push(`fault=${err.$fault}`);
  const response = err.$response ?? lastResponse;
  if (response) {
    parts.push(`response status=${response.statusCode} headers=${JSON.stringify(response.headers)}`);
  }
  if (err.$responseBodyText) parts.push(`body=${err.$responseBodyText}`);
  if (err.cause) parts.push(`cause=${err.cause}`);
  return parts.join("\n  ");
}

async function step(name, body) {
  let detail;
  try {
    detail = await body();
  } catch (err) {
    const text = describeError(err);
    if (KNOWN_SERVER_BUGS.has(name)) {
      serverFailures += 1;
      console.log(`FAILED (server): ${name}: ${text}`);
      return;
    }
    console.error(`FAILED: ${name}: ${text}`);
    process.exit(1);
  }
  console.log(detail ? `ok: ${name} (${detail})` : `ok: ${name}`);
}

async function getBytes(s3, bucket, key, extra = {}) {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...extra }));
  const bytes = await got.Body.transformToByteArray();
  return { got, bytes };
}

async function main() {
  const bucket = process.argv[2];
  if (!bucket || process.argv.length > 3) usage("exactly one argument: the bucket name");
  for (const name of ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]) {
    if (!process.env[name]) usage(`${name} is not set`);
  }

  // Default retry strategy and checksum behaviour: only the endpoint, region, credentials and
  // path-style addressing are given.
  const s3 = new S3Client({
    endpoint: process.env.AWS_ENDPOINT_URL,
    region: process.env.AWS_REGION,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID,
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
    },
    forcePathStyle: true,
  });
  s3.middlewareStack.add(
    (next) => async (args) => {
      lastResponse = null;
      const result = await next(args);
      lastResponse = result.response;
      return result;
    },
    { step: "deserialize", priority: "low", name: "ignifugeKeepLastResponse" },
  );

  const keys = new Set();

  await step("CreateBucket", async () => {
    const out = await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    return `Location=${out.Location}`;
  });

  await step("HeadBucket", async () => {
    const out = await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    check(out.$metadata.httpStatusCode === 200, `HeadBucket status ${out.$metadata.httpStatusCode}`);
  });

  // --- Single-request objects --------------------------------------------------------------
  const bigKey = "js/random-1MiB.bin";
  const big = randomBytes(MiB);
  let bigEtag;
  await step("PutObject 1 MiB Buffer", async () => {
    const out = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: bigKey, Body: big }));
    keys.add(bigKey);
    check(out.ETag === `"${md5(big)}"`, `PutObject ETag ${out.ETag}, expected "${md5(big)}"`);
    bigEtag = out.ETag;
    // The SDK sent x-amz-checksum-crc32 by default; S3 echoes it back.
    check(out.ChecksumCRC32 === crc32Base64(big), `PutObject ChecksumCRC32 ${out.ChecksumCRC32}, expected ${crc32Base64(big)}`);
    return `ETag=${out.ETag} ChecksumCRC32=${out.ChecksumCRC32}`;
  });

  // Not a Buffer but a stream, as from fs.createReadStream: with the default checksum setting
  // the SDK sends it aws-chunked, unsigned, with the CRC32 in a trailer.
  const streamKey = "js/stream-3MiB.bin";
  const streamData = randomBytes(3 * MiB + 17);
  await step("PutObject stream body (aws-chunked, CRC32 trailer)", async () => {
    const body = Readable.from([streamData.subarray(0, MiB), streamData.subarray(MiB)]);
    const out = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: streamKey, Body: body, ContentLength: streamData.length }),
    );
    keys.add(streamKey);
    check(out.ETag === `"${md5(streamData)}"`, `PutObject ETag ${out.ETag}, expected "${md5(streamData)}"`);
    check(
      out.ChecksumCRC32 === crc32Base64(streamData),
      `PutObject ChecksumCRC32 ${out.ChecksumCRC32}, expected ${crc32Base64(streamData)}`,
    );
    const { bytes } = await getBytes(s3, bucket, streamKey);
    check(sameBytes(bytes, streamData), "GetObject bytes differ from the streamed upload");
    return `ETag=${out.ETag} ChecksumCRC32=${out.ChecksumCRC32}`;
  });

  const smallKey = "js/small.txt";
  const smallText = "hello from the AWS SDK for JavaScript v3 — ünïcödé\n";
  const smallType = "text/plain; charset=utf-8";
  const smallMeta = { lang: "javascript", "client-name": "aws-sdk-js-v3" };
  let smallEtag;
  await step("PutObject small string with ContentType and Metadata", async () => {
    const out = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: smallKey,
        Body: smallText,
        ContentType: smallType,
        Metadata: smallMeta,
      }),
    );
    keys.add(smallKey);
    const expected = `"${md5(Buffer.from(smallText, "utf8"))}"`;
    check(out.ETag === expected, `PutObject ETag ${out.ETag}, expected ${expected}`);
    smallEtag = out.ETag;
    return `ETag=${out.ETag}`;
  });

  await step("GetObject 1 MiB", async () => {
    const { got, bytes } = await getBytes(s3, bucket, bigKey);
    check(bytes.length === big.length, `GetObject returned ${bytes.length} bytes, expected ${big.length}`);
    check(sameBytes(bytes, big), "GetObject bytes differ from the uploaded 1 MiB");
    check(got.ETag === bigEtag, `GetObject ETag ${got.ETag}, PutObject gave ${bigEtag}`);
    check(got.ContentLength === big.length, `GetObject ContentLength ${got.ContentLength}`);
    // The SDK asks for checksums (ChecksumMode) and validates them by default; check the value too.
    check(
      got.ChecksumCRC32 === undefined || got.ChecksumCRC32 === crc32Base64(big),
      `GetObject ChecksumCRC32 ${got.ChecksumCRC32}, expected ${crc32Base64(big)}`,
    );
    return `ChecksumCRC32=${got.ChecksumCRC32}`;
  });

  await step("GetObject small string", async () => {
    const { got, bytes } = await getBytes(s3, bucket, smallKey);
    const text = Buffer.from(bytes).toString("utf8");
    check(text === smallText, `GetObject body ${JSON.stringify(text)}, expected ${JSON.stringify(smallText)}`);
    check(got.ContentType === smallType, `GetObject ContentType ${got.ContentType}, expected ${smallType}`);
    check(
      sameMap(got.Metadata, smallMeta),
      `GetObject Metadata ${JSON.stringify(got.Metadata)}, expected ${JSON.stringify(smallMeta)}`,
    );
    check(got.ETag === smallEtag, `GetObject ETag ${got.ETag}, PutObject gave ${smallEtag}`);
  });

  await step("HeadObject", async () => {
    const out = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: smallKey }));
    const length = Buffer.byteLength(smallText, "utf8");
    check(out.ContentLength === length, `HeadObject ContentLength ${out.ContentLength}, expected ${length}`);
    check(out.ContentType === smallType, `HeadObject ContentType ${out.ContentType}`);
    check(out.ETag === smallEtag, `HeadObject ETag ${out.ETag}, expected ${smallEtag}`);
    check(sameMap(out.Metadata, smallMeta), `HeadObject Metadata ${JSON.stringify(out.Metadata)}`);
    check(out.LastModified instanceof Date && !isNaN(out.LastModified), `HeadObject LastModified ${out.LastModified}`);
    return `ContentLength=${out.ContentLength} LastModified=${out.LastModified.toISOString()}`;
  });

  await step("GetObject Range bytes=10-19", async () => {
    const { got, bytes } = await getBytes(s3, bucket, bigKey, { Range: "bytes=10-19" });
    check(got.$metadata.httpStatusCode === 206, `ranged GetObject status ${got.$metadata.httpStatusCode}, expected 206`);
    check(bytes.length === 10, `ranged GetObject returned ${bytes.length} bytes, expected 10`);
    check(sameBytes(bytes, big.subarray(10, 20)), "ranged GetObject bytes differ from bytes 10..19");
    check(got.ContentRange === `bytes 10-19/${MiB}`, `ContentRange ${got.ContentRange}`);
    return `ContentRange=${got.ContentRange}`;
  });

  // --- Multipart with lib-storage ------------------------------------------------------------
  const libKey = "js/lib-storage-12MiB.bin";
  const libData = randomBytes(12 * MiB);
  await step("lib-storage Upload 12 MiB (partSize 5 MiB, queueSize 2)", async () => {
    const upload = new Upload({
      client: s3,
      params: { Bucket: bucket, Key: libKey, Body: libData },
      partSize: 5 * MiB,
      queueSize: 2,
      leavePartsOnError: false,
    });
    const parts = [];
    upload.on("httpUploadProgress", (progress) => {
      if (progress.part !== undefined) parts.push(progress.part);
    });
    const out = await upload.done();
    keys.add(libKey);
    check(out.ETag && out.ETag.endsWith('-3"'), `Upload ETag ${out.ETag}, expected a 3-part ETag`);
    return `ETag=${out.ETag} parts reported=${[...new Set(parts)].sort().join(",")}`;
  });

  await step("GetObject of the lib-storage upload", async () => {
    const { got, bytes } = await getBytes(s3, bucket, libKey);
    check(bytes.length === libData.length, `got ${bytes.length} bytes, expected ${libData.length}`);
    check(sha256(bytes) === sha256(libData), `SHA-256 ${sha256(bytes)}, expected ${sha256(libData)}`);
    return `sha256=${sha256(bytes).slice(0, 16)}… ETag=${got.ETag}`;
  });

  // --- Manual multipart -------------------------------------------------------------------
  const mpuKey = "js/manual-mpu.bin";
  const part1 = randomBytes(5 * MiB);
  const part2 = randomBytes(1024);
  await step("manual multipart: Create, UploadPart x2 (5 MiB + 1 KiB), Complete", async () => {
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: mpuKey }));
    check(created.UploadId, "CreateMultipartUpload returned no UploadId");
    const completed = [];
    for (const [index, data] of [part1, part2].entries()) {
      const out = await s3.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: mpuKey,
          UploadId: created.UploadId,
          PartNumber: index + 1,
          Body: data,
        }),
      );
      check(out.ETag === `"${md5(data)}"`, `UploadPart ${index + 1} ETag ${out.ETag}, expected "${md5(data)}"`);
      completed.push({ PartNumber: index + 1, ETag: out.ETag });
    }
    const out = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: mpuKey,
        UploadId: created.UploadId,
        MultipartUpload: { Parts: completed },
      }),
    );
    keys.add(mpuKey);
    const expected = `"${md5(Buffer.concat(completed.map((p) => Buffer.from(p.ETag.slice(1, -1), "hex"))))}-2"`;
    check(out.ETag === expected, `CompleteMultipartUpload ETag ${out.ETag}, expected ${expected}`);
    return `UploadId=${created.UploadId} ETag=${out.ETag}`;
  });

  await step("GetObject of the manual multipart upload", async () => {
    const whole = Buffer.concat([part1, part2]);
    const { bytes } = await getBytes(s3, bucket, mpuKey);
    check(bytes.length === whole.length, `got ${bytes.length} bytes, expected ${whole.length}`);
    check(sha256(bytes) === sha256(whole), `SHA-256 ${sha256(bytes)}, expected ${sha256(whole)}`);
  });

  // --- Listing ----------------------------------------------------------------------------
  const listKeys = ["list/a/one.txt", "list/a/two.txt", "list/b/three.txt", "list/top.txt"];
  await step("PutObject listing fixtures", async () => {
    for (const key of listKeys) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body of ${key}` }));
      keys.add(key);
    }
    return `${listKeys.length} keys`;
  });

  await step("ListObjectsV2 Prefix=list/ Delimiter=/", async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "list/", Delimiter: "/" }));
    const contents = (out.Contents ?? []).map((o) => o.Key);
    const prefixes = (out.CommonPrefixes ?? []).map((p) => p.Prefix);
    check(JSON.stringify(contents) === JSON.stringify(["list/top.txt"]), `Contents ${JSON.stringify(contents)}`);
    check(
      JSON.stringify(prefixes) === JSON.stringify(["list/a/", "list/b/"]),
      `CommonPrefixes ${JSON.stringify(prefixes)}`,
    );
    check(out.KeyCount === 3, `KeyCount ${out.KeyCount}, expected 3`);
    check(out.IsTruncated === false, `IsTruncated ${out.IsTruncated}`);
    return `Contents=${JSON.stringify(contents)} CommonPrefixes=${JSON.stringify(prefixes)}`;
  });

  const pageKeys = ["page/1", "page/2", "page/3"];
  await step("paginateListObjectsV2 MaxKeys=1 over 3 keys", async () => {
    for (const key of pageKeys) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
      keys.add(key);
    }
    const seen = [];
    const pageSizes = [];
    for await (const page of paginateListObjectsV2(
      { client: s3, pageSize: 1 },
      { Bucket: bucket, Prefix: "page/", MaxKeys: 1 },
    )) {
      const pageKeysSeen = (page.Contents ?? []).map((o) => o.Key);
      pageSizes.push(pageKeysSeen.length);
      seen.push(...pageKeysSeen);
      check(pageSizes.length <= 10, "paginator did not stop after 10 pages");
    }
    check(JSON.stringify(seen) === JSON.stringify(pageKeys), `paginated keys ${JSON.stringify(seen)}`);
    check(pageSizes.every((n) => n <= 1), `page sizes ${JSON.stringify(pageSizes)} exceed MaxKeys=1`);
    check(pageSizes.filter((n) => n === 1).length === 3, `page sizes ${JSON.stringify(pageSizes)}`);
    return `${pageSizes.length} pages ${JSON.stringify(pageSizes)}`;
  });

  // --- Copy and tagging ---------------------------------------------------------------------
  const copyKey = "js/copy-of-small.txt";
  await step("CopyObject", async () => {
    const out = await s3.send(
      new CopyObjectCommand({ Bucket: bucket, Key: copyKey, CopySource: `${bucket}/${smallKey}` }),
    );
    keys.add(copyKey);
    check(out.CopyObjectResult?.ETag === smallEtag, `CopyObject ETag ${out.CopyObjectResult?.ETag}, expected ${smallEtag}`);
    const { got, bytes } = await getBytes(s3, bucket, copyKey);
    check(Buffer.from(bytes).toString("utf8") === smallText, "copied object body differs");
    check(got.ContentType === smallType, `copied ContentType ${got.ContentType}`);
    check(sameMap(got.Metadata, smallMeta), `copied Metadata ${JSON.stringify(got.Metadata)}`);
    return `ETag=${out.CopyObjectResult.ETag}`;
  });

  const tags = [
    { Key: "project", Value: "ignifuge" },
    { Key: "client", Value: "aws-sdk-js-v3" },
  ];
  await step("PutObjectTagging/GetObjectTagging", async () => {
    await s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: smallKey, Tagging: { TagSet: tags } }));
    const out = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: smallKey }));
    const got = Object.fromEntries((out.TagSet ?? []).map((t) => [t.Key, t.Value]));
    check(sameMap(got, Object.fromEntries(tags.map((t) => [t.Key, t.Value]))), `TagSet ${JSON.stringify(out.TagSet)}`);
    return `TagSet=${JSON.stringify(got)}`;
  });

  // --- Conditional GET --------------------------------------------------------------------
  await step("GetObject IfNoneMatch=ETag is 304", async () => {
    let outcome;
    try {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: smallKey, IfNoneMatch: smallEtag }));
      await got.Body?.transformToByteArray();
      outcome = `status ${got.$metadata.httpStatusCode} without an error`;
    } catch (err) {
      if (err.$metadata?.httpStatusCode === 304) return `SDK threw ${err.name} with httpStatusCode 304`;
      throw err;
    }
    throw new CheckError(`conditional GetObject: expected the SDK to throw with 304, got ${outcome}`);
  });

  // --- Cleanup ------------------------------------------------------------------------------
  await step("DeleteObjects of every key", async () => {
    const objects = [...keys].map((Key) => ({ Key }));
    const out = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
    check(!out.Errors || out.Errors.length === 0, `DeleteObjects Errors ${JSON.stringify(out.Errors)}`);
    const deleted = (out.Deleted ?? []).map((d) => d.Key).sort();
    check(
      JSON.stringify(deleted) === JSON.stringify([...keys].sort()),
      `DeleteObjects Deleted ${JSON.stringify(deleted)}, expected ${JSON.stringify([...keys].sort())}`,
    );
    return `${deleted.length} keys`;
  });

  await step("ListObjectsV2 is empty", async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const left = (out.Contents ?? []).map((o) => o.Key);
    check(left.length === 0 && out.KeyCount === 0, `keys left ${JSON.stringify(left)} KeyCount ${out.KeyCount}`);
  });

  await step("DeleteBucket", async () => {
    const out = await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    check(out.$metadata.httpStatusCode === 204, `DeleteBucket status ${out.$metadata.httpStatusCode}`);
  });

  s3.destroy();
  if (serverFailures > 0) {
    console.log(`${serverFailures} step(s) FAILED (server); every other check passed`);
    process.exit(3);
  }
  console.log("all checks passed");
}

function sortKeys(map) {
  return Object.fromEntries(Object.entries(map ?? {}).sort(([a], [b]) => a.localeCompare(b)));
}

function sameMap(a, b) {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

main().catch((err) => {
  console.error(`FAILED: ${describeError(err)}`);
  process.exit(1);
});
