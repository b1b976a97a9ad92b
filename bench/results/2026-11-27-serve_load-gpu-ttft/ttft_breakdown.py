import json,sys,math
def pct(v,p):
    v=sorted(v); k=(len(v)-1)*p/100; f=math.floor(k); c=min(f+1,len(v)-1)
    return v[f]+(v[c]-v[f])*(k-f)
rows=[json.loads(l) for l in open(sys.argv[1])]
thr=float(sys.argv[2]) if len(sys.argv)>2 else 12
for run in ['unloaded-1c','open-80%']:
    r=[x for x in rows if x['run']==run]
    v=[x['ttft_ms'] for x in r]
    print(run,'n',len(r),'p50 %.1f p90 %.1f p99 %.1f'%(pct(v,50),pct(v,90),pct(v,99)))
    for lo,hi in [(0,32),(32,64),(64,128),(128,192),(192,257)]:
        vv=[x['ttft_ms'] for x in r if lo<=x['prompt']<hi]
        if vv: print('   prompt %3d-%3d n %4d p50 %6.1f p90 %6.1f p99 %6.1f max %6.1f'%(lo,hi,len(vv),pct(vv,50),pct(vv,90),pct(vv,99),max(vv)))
    if 'running_at' in r[0] and run!='unloaded-1c':
        for lo,hi in [(0,20),(20,30),(30,40),(40,50),(50,60),(60,65),(64,999)]:
            vv=[x['ttft_ms'] for x in r if lo<=x['running_at']<hi and x['queued_at']==0]
            if vv: print('   running %2d-%2d (q=0) n %4d p50 %6.1f p99 %6.1f'%(lo,hi,len(vv),pct(vv,50),pct(vv,99)))
        vv=[x['ttft_ms'] for x in r if x['queued_at']>0]
        if vv: print('   queued>0 n %d p50 %.1f p99 %.1f'%(len(vv),pct(vv,50),pct(vv,99)))
